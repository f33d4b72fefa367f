"""Loop-hosted pykka actors, core processes, shared-memory mailboxes. Imports no project code."""

__all__: list[str] = []
