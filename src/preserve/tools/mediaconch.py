"""MediaConch implementation checks (Matroska/EBML, FFV1) and policy checks (the shipped policy
for our FFV1/Matroska preservation masters); runs `mediaconch --force` via tools.run, writes
nothing of ours (MediaConch keeps its own cache database in the user's data directory, which
--force stops it from answering with stale results)."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from preserve import tools
from preserve.core.errors import ToolError
from preserve.core.model import Agent
from preserve.tools.ffprobe import ProbeReport

#: the policy every preservation master must pass (MediaConch XML policy; ships with preserve)
MASTER_POLICY = Path(__file__).resolve().parent / "policies" / "ffv1_mkv_master.xml"
_NS = {"mc": "https://mediaarea.net/mediaconch"}


@dataclass(frozen=True)
class ConchReport:
    """A finding: ``ok`` is False when any implementation check or policy rule failed."""

    kind: str  # implementation | policy
    ok: bool
    checks_run: int
    failures: list[str] = field(default_factory=list)

    def describe(self) -> str:
        what = "implementation checks" if self.kind == "implementation" else f"policy {MASTER_POLICY.name}"
        if self.ok:
            return f"MediaConch {what}: pass ({self.checks_run} checks)"
        return f"MediaConch {what}: FAIL: " + "; ".join(self.failures[:10])


def applies_to(probe: ProbeReport) -> bool:
    """MediaConch's implementation checkers cover Matroska (EBML) and FFV1; other files get none."""
    return probe.readable and (
        "matroska" in probe.format_name or any(s.get("codec_name") == "ffv1" for s in probe.video_streams)
    )


def implementation_argv(path: Path) -> list[str]:
    """Absolute path, so a name starting with '-' is never an option."""
    return ["mediaconch", "--force", "-mc", "-fx", str(Path(path).absolute())]


def policy_argv(path: Path, policy: Path = MASTER_POLICY) -> list[str]:
    return ["mediaconch", "--force", "-p", str(Path(policy).absolute()), "-fx", str(Path(path).absolute())]


def parse(xml: bytes, kind: str) -> ConchReport:
    """Read MediaConch's XML report (pure). A report without a verdict (MediaConch 23.03 prints
    nothing at all for a policy file it cannot use) is an error, never a pass."""
    try:
        root = etree.fromstring(xml)
    except etree.XMLSyntaxError as exc:
        raise ToolError(f"MediaConch produced no readable report: {exc}") from exc
    media = root.findall("mc:media", _NS)
    if not media:
        raise ToolError("MediaConch produced a report without any file in it")
    failures: list[str] = []
    run = 0
    if kind == "implementation":
        blocks = root.findall(".//mc:implementationChecks", _NS)
        if not blocks:
            raise ToolError("MediaConch's report has no implementation checks")
        for block in blocks:
            run += int(block.get("checks_run") or 0)
            for check in block.findall("mc:check", _NS):
                if int(check.get("fail_count") or 0) > 0:
                    where = [v.get("context", "") for v in check.findall(".//mc:value", _NS)][:2]
                    failures.append(
                        f"{check.get('icid')} ({check.get('fail_count')} failed"
                        + (f" at {', '.join(where)}" if where else "")
                        + ")"
                    )
    else:
        policy = root.find("mc:media/mc:policy", _NS)
        if policy is None or policy.get("outcome") is None:
            raise ToolError("MediaConch's report has no policy verdict (is the policy file valid?)")
        run = int(policy.get("rules_run") or 0)
        if policy.get("outcome") != "pass":
            for rule in policy.iter(f"{{{_NS['mc']}}}rule"):
                if rule.get("outcome") == "fail" and rule.getparent() is policy:
                    failures.append(
                        f"{rule.get('name')} (wanted {rule.get('requested', '')!r}, found {rule.get('actual', '')!r})"
                    )
            for sub in policy.findall("mc:policy", _NS):
                if sub.get("outcome") != "pass":
                    failures.append(f"{sub.get('name')}: failed")
            failures = failures or [f"policy outcome {policy.get('outcome')}"]
    return ConchReport(kind=kind, ok=not failures, checks_run=run, failures=failures)


def _run(argv: list[str], kind: str, timeout: float | None) -> ConchReport:
    result = tools.run(argv, timeout=timeout, check=False)
    if result.returncode != 0:
        raise ToolError(
            f"mediaconch exited with status {result.returncode}: {result.stderr.strip()[-300:]}",
            argv=argv,
            returncode=result.returncode,
            stderr=result.stderr,
        )
    return parse(result.stdout, kind)


def check_implementation(path: Path, *, timeout: float | None = 6 * 3600) -> ConchReport:
    """MediaConch's implementation checks (EBML/Matroska structure, FFV1 headers). It does not
    decode every slice: a flipped bit inside an FFV1 slice passes here; the decode check finds it."""
    return _run(implementation_argv(path), "implementation", timeout)


def check_policy(path: Path, policy: Path = MASTER_POLICY, *, timeout: float | None = 6 * 3600) -> ConchReport:
    return _run(policy_argv(path, policy), "policy", timeout)


@functools.lru_cache(maxsize=1)
def version() -> str:
    try:
        res = tools.run(["mediaconch", "--Version"], timeout=30, check=False)
    except ToolError:
        return ""
    m = re.search(r"(\d+\.\d+(?:\.\d+)?)", res.stdout.decode("utf-8", "replace") + res.stderr)
    return m.group(1) if m else ""


def agent() -> Agent:
    return Agent("MediaConch", version())
