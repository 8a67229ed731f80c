"""What both sides share: settings, the database (engine, tables, queries, migrations), the
artifact storage and the broker client. Torch-free and HTTP-free."""
