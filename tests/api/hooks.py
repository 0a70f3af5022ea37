"""schemathesis hooks for tapedeck's API test (loaded by schemathesis.toml).

WHIP bodies are SDP text (`application/sdp`), a media type schemathesis has
no serializer for: send the generated string as UTF-8, as a WHIP client does.
tus bodies (`application/offset+octet-stream`) are bytes: send them as they
are (a generated string as UTF-8).
"""

import schemathesis


@schemathesis.serializer("application/sdp")
def sdp(ctx, value):
    if value is None:
        return None
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8", "surrogatepass")


@schemathesis.serializer("application/offset+octet-stream")
def octets(ctx, value):
    if value is None:
        return None
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8", "surrogatepass")
