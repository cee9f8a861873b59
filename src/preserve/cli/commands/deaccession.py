"""`preserve deaccession request|approve|list|cancel`: removing an AIP from the archive takes two
people. One requests it (a request id is printed), a second approves it, which carries it out:
access withdrawn, every object on every replica deleted (every version) or, under Object Lock,
scheduled for the day its retention ends. The operator is --operator, else $PRESERVE_OPERATOR,
else the login name. Side effects: catalog writes; on approval, deletions on the replicas and the
access locations; stdout/stderr.

Exit codes: 0 done (every object deleted or scheduled); 1 approved but something could not be
deleted yet (recorded, retried by the audit and by approving again); 2 usage errors (unknown AIP or
request, a second request, the requester approving, a cancelled request)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from preserve.cli.invocation import EXIT_FINDING, EXIT_OK, load_settings, open_catalog, operator
from preserve.cli.output import table

if TYPE_CHECKING:
    from preserve.catalog.deaccessions import Deaccession


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The `deaccession` command and its four actions, on the top-level subparsers."""
    help_ = "remove an AIP from the archive, with two people: request, approve (carries it out), list, cancel"
    p = sub.add_parser("deaccession", help=help_, description=help_)
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    def action(name: str, help: str) -> argparse.ArgumentParser:
        ap = actions.add_parser(name, help=help, description=help)
        # also accepted after the action; the top-level --operator otherwise (SUPPRESS keeps it)
        ap.add_argument("--operator", default=argparse.SUPPRESS, help="who is deciding, for the record")
        return ap

    ap = action("request", "ask for an AIP to be deaccessioned; prints the request id a second person approves")
    ap.add_argument("aip_id", metavar="AIP_ID")
    ap.add_argument("--reason", required=True, help="why (kept in the AIP's tombstone)")
    ap.set_defaults(func=cmd_request)
    ap = action("approve", "approve someone else's request and carry it out (again, to resume one approved)")
    ap.add_argument("request_id", metavar="REQUEST_ID")
    ap.set_defaults(func=cmd_approve)
    ap = action("list", "deaccession requests: waiting, cancelled, approved, completed")
    ap.add_argument("--json", action="store_true")
    ap.set_defaults(func=cmd_list)
    ap = action("cancel", "cancel a request that is still waiting for approval")
    ap.add_argument("request_id", metavar="REQUEST_ID")
    ap.add_argument("--reason", default="", help="why (recorded)")
    ap.set_defaults(func=cmd_cancel)


def cmd_request(args: argparse.Namespace) -> int:
    from preserve.operations import deaccession

    who = operator(args)
    settings = load_settings(args)
    with open_catalog(settings) as catalog:
        d = deaccession.request(catalog, args.aip_id, reason=args.reason, operator=who, settings=settings)
    print(d.id)
    print(
        f"deaccession of AIP {d.aip_id} requested by {who.name}; nothing is deleted until another person runs "
        f"`preserve deaccession approve {d.id}`",
        file=sys.stderr,
    )
    return EXIT_OK


def cmd_approve(args: argparse.Namespace) -> int:
    from preserve.catalog.deaccessions import DeletionState
    from preserve.operations import deaccession

    who = operator(args)
    settings = load_settings(args)
    with open_catalog(settings) as catalog:
        report = deaccession.approve(settings, catalog, args.request_id, operator=who)
        aip = catalog.get_aip(report.deaccession.aip_id)
    d = report.deaccession
    verb = "resumed" if report.resumed else "approved"
    print(f"deaccession {d.id} of AIP {d.aip_id} {verb} by {who.name} (requested by {d.requested_by})")
    print(
        "access withdrawn (verified: no version of any access copy remains)"
        if report.withdrawn
        else "access NOT yet withdrawn (the film stays withheld; it is retried)"
    )
    for problem in report.problems[:20]:
        print(f"  problem    {problem}")
    for o in report.outcomes:
        print(f"  {o.state.value:9}  {o.target}:{o.key}  {o.detail}")
    counts = {st: len(d.objects_in(st)) for st in DeletionState}
    print(
        f"{counts[DeletionState.DELETED]} object(s) deleted, {counts[DeletionState.SCHEDULED]} scheduled, "
        f"{counts[DeletionState.FAILED] + counts[DeletionState.PENDING] + counts[DeletionState.REAPPEARED]} not "
        f"deleted yet; deaccession {d.state.value}"
    )
    if aip is not None and aip.submission_name and (settings.done_dir / aip.submission_name).exists():
        print(
            f"note: the submission as it came in is still in {settings.done_dir / aip.submission_name}; preserve "
            "never deletes sources: remove it by hand if it must go too"
        )
    if not report.ok:
        print(
            "preserve: not everything could be removed yet; nothing is reported deleted that is not gone. "
            f"Fix the cause shown above, then run `preserve deaccession approve {d.id}` again "
            "(the scheduled audit also retries).",
            file=sys.stderr,
        )
        return EXIT_FINDING
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    from preserve.report.views import tombstone_json

    settings = load_settings(args)
    with open_catalog(settings) as catalog:
        found = catalog.deaccessions()
    if args.json:
        print(json.dumps([tombstone_json(d) for d in found], ensure_ascii=False, indent=2))
        return EXIT_OK
    if not found:
        print("no deaccession requests")
        return EXIT_OK

    def objects(d: Deaccession) -> str:
        if not d.objects:
            return "-"
        states: dict[str, int] = {}
        for o in d.objects:
            states[o.state.value] = states.get(o.state.value, 0) + 1
        return ", ".join(f"{n} {s}" for s, n in sorted(states.items()))

    print(
        table(
            ["request", "AIP", "state", "requested", "approved", "objects"],
            [
                (
                    d.id,
                    d.aip_id,
                    d.state.value,
                    f"{d.requested_by} {d.requested_at:%Y-%m-%d %H:%M}",
                    f"{d.approved_by} {d.approved_at:%Y-%m-%d %H:%M}" if d.approved_at else "-",
                    objects(d),
                )
                for d in found
            ],
        )
    )
    return EXIT_OK


def cmd_cancel(args: argparse.Namespace) -> int:
    from preserve.operations import deaccession

    who = operator(args)
    settings = load_settings(args)
    with open_catalog(settings) as catalog:
        d = deaccession.cancel(catalog, args.request_id, operator=who, reason=args.reason, settings=settings)
    print(f"deaccession request {d.id} of AIP {d.aip_id} cancelled by {who.name}; nothing was deleted")
    return EXIT_OK


def print_tombstone(d: Deaccession) -> None:
    """The tombstone in `preserve show`: the decision, then what was deleted where and when."""
    print(
        f"DEACCESSIONED ({d.state.value}): request {d.id}\n"
        f"  requested by {d.requested_by} on {d.requested_at:%Y-%m-%d %H:%M} UTC; reason: {d.reason}\n"
        f"  approved by {d.approved_by}" + (f" on {d.approved_at:%Y-%m-%d %H:%M} UTC" if d.approved_at else "")
    )
    print(
        table(
            ["replica", "key", "deletion", "when", "detail"],
            [
                (
                    o.target,
                    o.key,
                    o.state.value,
                    f"{(o.deleted_at or o.due_at):%Y-%m-%d %H:%M}" if (o.deleted_at or o.due_at) else "-",
                    o.detail[:100],
                )
                for o in d.objects
            ],
        )
    )
