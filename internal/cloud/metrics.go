package cloud

import (
	"context"
	"errors"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// awsCalls counts AWS API calls (after the SDK's retries) by service, operation and
// outcome: "success" or the AWS error code.
var awsCalls = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "workspace_operator_aws_calls_total",
	Help: "AWS API calls by service, operation and outcome (success or the AWS error code).",
}, []string{"service", "operation", "outcome"})

func init() {
	metrics.Registry.MustRegister(awsCalls)
}

// Instrument adds the call metrics to every client built from cfg.
func Instrument(cfg aws.Config) aws.Config {
	cfg.APIOptions = append(cfg.APIOptions, func(stack *middleware.Stack) error {
		return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("WorkspaceOperatorCallMetrics",
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				out, metadata, err := next.HandleInitialize(ctx, in)
				awsCalls.WithLabelValues(awsmiddleware.GetServiceID(ctx), awsmiddleware.GetOperationName(ctx), outcome(err)).Inc()
				return out, metadata, err
			}), middleware.After)
	})
	return cfg
}

func outcome(err error) string {
	if err == nil {
		return "success"
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode()
	}
	return "error"
}
