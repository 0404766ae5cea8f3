"""Mail: the Mailbox port (Gmail, Graph, sandbox), MIME building, effectively-once send and
reply ingestion."""
