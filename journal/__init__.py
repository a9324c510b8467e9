"""The electronic journal: tables, intake of call events, queries, users, audit, the event bus."""
