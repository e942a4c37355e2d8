"""Command-line entry point and configuration shared by every chatguard component."""
