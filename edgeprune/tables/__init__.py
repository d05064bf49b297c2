"""SQLite latency/energy tables: measured points with their provenance."""
