"""The lake's curation job: raw LOAD and change files (written by the ``lake``
target) turned into de-duplicated, partitioned Delta Lake tables, with a
controller entry per table, and a DuckDB catalog over them for ``conveyor
query``. See ``docs/lake.md``."""
