"""The service's core in a process of its own, for the real SIGKILL test.

``python -m tests.service_process [SCHEMA]``: settings from the HOTLINE_* variables (as
``hotline serve``), the PostgreSQL schema of the test (if any) as the argument. Prints
``started`` once it runs; it never stops by itself.
"""

from __future__ import annotations

import asyncio
import sys

from config import load_settings
from hotline.assembly import build_services


async def main(schema: str | None) -> None:
    services = build_services(load_settings(), db_schema=schema)
    await services.start()
    print("started", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] else None))
