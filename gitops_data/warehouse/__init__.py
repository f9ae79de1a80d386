"""DuckDB: connections under a cross-process lock, the catalog, writing builds, publishing views."""
