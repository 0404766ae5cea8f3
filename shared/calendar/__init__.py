"""Calendar: the Calendar port (Google, Graph, sandbox), free/busy and invitations."""
