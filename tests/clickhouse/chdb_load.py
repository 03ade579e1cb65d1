"""Load a ClickHouse sink's captured request into a current ClickHouse
(26.x, embedded by chdb-core) the way the server's HTTP interface would:
the request's own INSERT query and settings, its body as the data. Then
print every stored row as JSON lines, for the Rust test to compare.

usage: chdb_load.py SCHEMA.sql QUERY_STRING BODY_FILE
"""

import sys
import tempfile
import urllib.parse

from chdb import session

schema_path, query_string, body_path = sys.argv[1:4]
params = dict(urllib.parse.parse_qsl(query_string))
insert = params.pop("query")
settings = ", ".join(f"{k} = '{v}'" for k, v in sorted(params.items()))
with open(schema_path) as f:
    schema = f.read()
with open(body_path) as f:
    body = f.read()

with tempfile.TemporaryDirectory() as path:
    s = session.Session(path)
    s.query(schema)
    # `INSERT INTO db.t FORMAT JSONEachRow` with the request's settings
    # placed before FORMAT, and the body inline after it.
    head, fmt = insert.split(" FORMAT ", 1)
    s.query(f"{head} SETTINGS {settings} FORMAT {fmt}\n{body}")
    print(
        s.query(
            "SELECT toUnixTimestamp(ts) AS ts, service, level, status, route, sample_rate, raw "
            "FROM logs ORDER BY raw FORMAT JSONEachRow",
            "JSONEachRow",
        ),
        end="",
    )
