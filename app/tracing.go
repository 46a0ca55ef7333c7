package app

import (
	"context"
	"fmt"
	"strings"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"

	"github.com/commonops/commonops/internal/tracing"
)

// ServiceNameDefault is the service.name of the spans when OTEL_SERVICE_NAME
// is not set.
const ServiceNameDefault = "commonops"

// TracingFromEnv turns on OpenTelemetry tracing when the standard variables
// ask for it, and returns the function that flushes and stops it (a no-op
// when tracing stays off). Tracing is off by default; it is on when
// OTEL_TRACES_EXPORTER is "otlp", or when OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set and OTEL_TRACES_EXPORTER is not
// "none"; OTEL_SDK_DISABLED=true keeps it off. Spans go over OTLP/HTTP
// (protobuf) to the endpoint those variables name (default
// http://localhost:4318/v1/traces); OTEL_SERVICE_NAME (default commonops),
// OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER(_ARG), OTEL_BSP_* and
// OTEL_EXPORTER_OTLP_(TRACES_)HEADERS, _TIMEOUT and _COMPRESSION apply as
// the OpenTelemetry specification says.
func TracingFromEnv(ctx context.Context, getenv func(string) string) (shutdown func(context.Context) error, err error) {
	off := func(context.Context) error { return nil }
	exporter := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER"))
	endpoint := strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
	base := strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_ENDPOINT"))
	switch {
	case strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true"):
		return off, nil
	case exporter == "none":
		return off, nil
	case exporter == "" && endpoint == "" && base == "":
		return off, nil
	case exporter != "" && exporter != "otlp":
		return nil, fmt.Errorf("OTEL_TRACES_EXPORTER=%s: only otlp or none is supported", exporter)
	}
	if p := strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")); p == "" {
		p = strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_PROTOCOL"))
		if p != "" && p != "http/protobuf" {
			return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL=%s: only http/protobuf is supported", p)
		}
	} else if p != "http/protobuf" {
		return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=%s: only http/protobuf is supported", p)
	}
	var opts []otlptracehttp.Option
	switch {
	case endpoint != "":
		opts = append(opts, otlptracehttp.WithEndpointURL(endpoint))
	case base != "":
		opts = append(opts, otlptracehttp.WithEndpointURL(strings.TrimSuffix(base, "/")+"/v1/traces"))
	}
	exp, err := otlptracehttp.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("OTLP trace exporter: %w", err)
	}
	name := strings.TrimSpace(getenv("OTEL_SERVICE_NAME"))
	if name == "" {
		name = ServiceNameDefault
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(semconv.ServiceName(name)))
	if err != nil {
		return nil, fmt.Errorf("trace resource: %w", err)
	}
	if env, err := resource.New(ctx, resource.WithFromEnv()); err == nil {
		if merged, err := resource.Merge(res, env); err == nil {
			res = merged
		}
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	tracing.Enable(tp)
	return func(ctx context.Context) error {
		tracing.Enable(nil)
		return tp.Shutdown(ctx)
	}, nil
}
