"""External programs: `run` is the only way preserve starts a subprocess; one module per program
builds its argv (pure) and parses its output (ffprobe, mediainfo, mediaconch, clamav)."""

from preserve.tools.run import (
    ToolResult,
    agent,
    media_path,
    preserve_agent,
    python_agent,
    run,
    version_of,
)

__all__ = ["ToolResult", "agent", "media_path", "preserve_agent", "python_agent", "run", "version_of"]
