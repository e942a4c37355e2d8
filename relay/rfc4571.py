"""RFC 4571 framing: datagrams (STUN, DTLS, SRTP, SRTCP) carried over a TCP stream.

Why: ICE over TCP (RFC 6544) sends each packet that would have been a UDP datagram as a
2-byte big-endian length followed by that many bytes. TCP delivers any split of the stream,
so the decoder must cope with a frame arriving a byte at a time or several frames in one
read. Sans-I/O: the caller feeds whatever the socket gave and gets whole frames back.
"""

from __future__ import annotations

from typing import Final

HEADER_BYTES: Final = 2
MAX_FRAME_BYTES: Final = 0xFFFF
"""The most a 2-byte length can say; the decoder's own limit may be lower."""


class FramingError(ValueError):
    """The stream announced a frame larger than this decoder accepts: close the connection."""


def encode_frame(payload: bytes) -> bytes:
    """``payload`` with its length prefix."""
    if len(payload) > MAX_FRAME_BYTES:
        raise ValueError(f"an RFC 4571 frame carries at most {MAX_FRAME_BYTES} bytes")
    return len(payload).to_bytes(HEADER_BYTES, "big") + payload


class FrameDecoder:
    """Turns stream chunks into frames, holding at most one partial frame.

    ``max_frame_bytes`` bounds what one connection can make the relay buffer: real ICE
    traffic (STUN, DTLS records, SRTP packets) stays under the path MTU, so a larger
    announced length means a broken or hostile peer, and the stream cannot be resynchronised.
    Zero-length frames carry nothing and are skipped.
    """

    def __init__(self, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        if not 0 < max_frame_bytes <= MAX_FRAME_BYTES:
            raise ValueError(f"max_frame_bytes must be 1-{MAX_FRAME_BYTES}")
        self.max_frame_bytes = max_frame_bytes
        self._buffer = bytearray()

    @property
    def pending_bytes(self) -> int:
        """Bytes of an incomplete frame held until the rest arrives."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        """The frames completed by ``data``, in stream order.

        Raises :class:`FramingError` at the first oversize length; frames completed before
        it in the same chunk are lost with the connection, which the caller closes anyway.
        """
        buffer = self._buffer
        buffer += data
        frames: list[bytes] = []
        start = 0
        end = len(buffer)
        while end - start >= HEADER_BYTES:
            length = (buffer[start] << 8) | buffer[start + 1]
            if length > self.max_frame_bytes:
                raise FramingError(
                    f"frame of {length} bytes announced, at most {self.max_frame_bytes} accepted"
                )
            if end - start - HEADER_BYTES < length:
                break
            body = start + HEADER_BYTES
            if length:
                frames.append(bytes(buffer[body : body + length]))
            start = body + length
        del buffer[:start]
        return frames
