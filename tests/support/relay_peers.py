"""aiortc clients connected to an in-process relay hub, signalled as the signaling server would."""

from __future__ import annotations

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from relay.aiortc_adapter import AiortcLeg, FaultCallback, PacketCallback
from relay.forwarding_hub import ForwardingHub


def config() -> RTCConfiguration:
    return RTCConfiguration(iceServers=[])


async def connect_client(
    client: RTCPeerConnection,
    hub: ForwardingHub,
    relay_pcs: list[RTCPeerConnection],
    fast_receive: bool = True,
    on_rtp: PacketCallback | None = None,
    on_fault: FaultCallback | None = None,
) -> AiortcLeg:
    """Signalling as the signaling server would do it: client offers, relay answers."""
    await client.setLocalDescription(await client.createOffer())
    pc = RTCPeerConnection(config())
    relay_pcs.append(pc)
    await pc.setRemoteDescription(client.localDescription)
    AiortcLeg.prepare_transceivers(pc)
    await pc.setLocalDescription(await pc.createAnswer())
    leg = AiortcLeg(
        pc, on_rtp or hub.on_rtp, hub.on_rtcp, fast_receive=fast_receive, on_fault=on_fault
    )
    hub.add_leg(leg)
    answer = pc.localDescription
    await client.setRemoteDescription(RTCSessionDescription(sdp=answer.sdp, type=answer.type))
    return leg
