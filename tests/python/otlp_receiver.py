"""An OTLP/HTTP receiver for the tests: decodes what is posted with the
official `opentelemetry-proto` package and writes one JSON line per span
and per metric data point.

    python otlp_receiver.py OUT.jsonl

Listens on a free loopback port, prints `listening PORT` once ready, and
serves until killed. POST /v1/traces takes an ExportTraceServiceRequest,
POST /v1/metrics an ExportMetricsServiceRequest (protobuf, gzipped or
not); each is answered 200 with the matching serialized response. Any
other request, or a body that does not decode, is answered 400 and logged
as {"signal": "error", ...}.
"""

import gzip
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

OUT = open(sys.argv[1], "a", encoding="utf-8")
LOCK = threading.Lock()


def value_of(any_value):
    """An AnyValue as a plain Python value."""
    kind = any_value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [value_of(v) for v in any_value.array_value.values]
    if kind == "kvlist_value":
        return attributes(any_value.kvlist_value.values)
    if kind == "bytes_value":
        return any_value.bytes_value.hex()
    return getattr(any_value, kind)


def attributes(key_values):
    return {kv.key: value_of(kv.value) for kv in key_values}


def write(record):
    with LOCK:
        OUT.write(json.dumps(record) + "\n")
        OUT.flush()


def spans(request):
    for resource_spans in request.resource_spans:
        resource = attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                write(
                    {
                        "signal": "span",
                        "name": span.name,
                        "trace_id": span.trace_id.hex(),
                        "span_id": span.span_id.hex(),
                        "parent_span_id": span.parent_span_id.hex(),
                        "start_ns": span.start_time_unix_nano,
                        "end_ns": span.end_time_unix_nano,
                        "attributes": attributes(span.attributes),
                        "events": [e.name for e in span.events],
                        "scope": scope_spans.scope.name,
                        "resource": resource,
                    }
                )


def metrics(request):
    for resource_metrics in request.resource_metrics:
        resource = attributes(resource_metrics.resource.attributes)
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                kind = metric.WhichOneof("data")
                data = getattr(metric, kind)
                for point in data.data_points:
                    record = {
                        "signal": "metric",
                        "name": metric.name,
                        "unit": metric.unit,
                        "kind": kind,
                        "monotonic": getattr(data, "is_monotonic", None),
                        "attributes": attributes(point.attributes),
                        "resource": resource,
                    }
                    if kind == "histogram":
                        record["count"] = point.count
                        record["sum"] = point.sum
                        record["bounds"] = list(point.explicit_bounds)
                        record["bucket_counts"] = list(point.bucket_counts)
                    else:
                        number = point.WhichOneof("value")
                        record["value"] = getattr(point, number)
                    write(record)


ROUTES = {
    "/v1/traces": (
        trace_service_pb2.ExportTraceServiceRequest,
        trace_service_pb2.ExportTraceServiceResponse,
        spans,
    ),
    "/v1/metrics": (
        metrics_service_pb2.ExportMetricsServiceRequest,
        metrics_service_pb2.ExportMetricsServiceResponse,
        metrics,
    ),
}


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        route = ROUTES.get(self.path)
        try:
            if route is None:
                raise ValueError(f"no route {self.path}")
            if self.headers.get("Content-Type") != "application/x-protobuf":
                raise ValueError(f"content type {self.headers.get('Content-Type')}")
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            request_type, response_type, handle = route
            request = request_type()
            request.ParseFromString(body)
            handle(request)
            answer = response_type().SerializeToString()
            code = 200
        except Exception as error:  # noqa: BLE001 - reported to the test
            write({"signal": "error", "path": self.path, "error": str(error)})
            answer, code = str(error).encode(), 400
        self.send_response(code)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(f"listening {server.server_address[1]}", flush=True)
server.serve_forever()
