"""``hotline demo``: the whole service on SQLite with a replayed PBX as its Asterisk.

The recorded calls of ``hotline/demo_data`` are replayed in a loop over a real TCP AMI
connection, each round with fresh ids (and the round's MixMonitor files put where Asterisk
would have written them), so requests keep appearing. Demo users are created on first start.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path

from config import load_settings
from hotline.startup import run_service
from journal.db import Database
from journal.users import UserError, add_user
from telephony.replay import ReplayPeer
from telephony.trace import TraceItem, read_trace, refresh_ids

DEMO_DATA = Path(__file__).parent / "demo_data"
DEMO_DIR = Path("var/demo")
PBX_MONITOR_DIR = "/var/spool/asterisk/monitor"
DEMO_USERS = (
    ("admin", "admin-demo-1", "admin", None, None),
    ("operator101", "operator-demo-1", "operator", None, "101"),
    ("expert201", "expert-demo-1", "operator", None, "201"),
    ("smo1", "smo1-demo-1", "smo", "SMO1", None),
    ("auditor", "auditor-demo-1", "auditor", None, None),
)


def demo_items() -> list[TraceItem]:
    items: list[TraceItem] = []
    for scenario in sorted(p for p in DEMO_DATA.iterdir() if p.is_dir()):
        trace = read_trace(scenario / "trace.jsonl")
        offset = items[-1].t + 3.0 if items else 0.0
        # One session for the whole demo: keep the first banner and login, drop the others.
        for item in trace:
            if items and (item.banner is not None or item.is_response
                          or item.header("Event") == "FullyBooted"):
                continue
            if item.marker == "recorder-stop":
                continue
            items.append(TraceItem(item.t + offset, item.pairs, item.banner, item.marker))
    return items


def place_recordings(round_no: int, recordings_dir: Path) -> None:
    """Copy each demo WAV to the name MixMonitor would have used in this round."""
    for scenario in DEMO_DATA.iterdir():
        for wav in (scenario / "recordings").rglob("*.wav"):
            relative = wav.relative_to(scenario / "recordings").as_posix()
            renamed = next(refresh_ids([TraceItem(0, pairs=(("x", relative),))], round_no))
            target = recordings_dir / renamed.pairs[0][1]
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                shutil.copyfile(wav, target)


async def run_demo(port: int = 8080, speed: float = 1.0) -> int:
    DEMO_DIR.mkdir(parents=True, exist_ok=True)
    recordings_dir = DEMO_DIR / "recordings"
    items = demo_items()
    peer = ReplayPeer(items, speed=speed, rounds=None, round_pause_s=5.0,
                      first_round=_next_round(),
                      on_round=lambda round_no: place_recordings(round_no, recordings_dir))
    ami_port = await peer.start()
    settings = load_settings(
        ami_host="127.0.0.1", ami_port=ami_port, ami_secret="journal-secret",
        database_url=f"sqlite+aiosqlite:///{DEMO_DIR / 'hotline.sqlite3'}",
        recordings_dir=recordings_dir, recordings_pbx_dir=PBX_MONITOR_DIR,
        hotline_numbers=["88007070561"], l2_targets=["7001", "201", "202"],
        smo_lines={"88001002030": "SMO1", "88005553535": "SMO2"},
        smo_names={"SMO1": "СМО «Здоровье»", "SMO2": "СМО «Надёжная»"},
        http_port=port, spill_dir=DEMO_DIR / "spill",
    )
    await _ensure_users(settings.database_url)
    print("hotline demo: demo users (login / password):", file=sys.stderr)
    for login, password, role, smo, ext in DEMO_USERS:
        extra = f" SMO {smo}" if smo else (f" ext {ext}" if ext else "")
        print(f"  {login} / {password}  [{role}{extra}]", file=sys.stderr)
    print(f"hotline demo: open http://127.0.0.1:{port}/ ; calls arrive within a minute",
          file=sys.stderr)
    try:
        await run_service(settings)
    finally:
        await peer.close()
    return 0


def _next_round() -> int:
    """Fresh ids on every start too, so a restarted demo never replays old Linkedids."""
    marker = DEMO_DIR / "round"
    value = int(marker.read_text()) + 1 if marker.exists() else 0
    marker.write_text(str(value + 1000))
    return value


async def _ensure_users(database_url: str) -> None:
    db = Database(database_url)
    await db.upgrade_schema()  # the demo's own file: it upgrades itself
    try:
        for login, password, role, smo, ext in DEMO_USERS:
            try:
                async with db.sessions.begin() as session:
                    await add_user(session, login, password, role, smo, ext)
            except UserError:
                pass  # already there
    finally:
        await db.dispose()


if __name__ == "__main__":
    asyncio.run(run_demo())
