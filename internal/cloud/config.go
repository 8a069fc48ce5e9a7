package cloud

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
)

// Tags every AWS resource the operator creates carries. Adoption after a crash and the
// refusal to touch resources of another cluster or workspace both rely on them.
const (
	TagManagedBy = "workspace-operator.io/managed-by"
	TagCluster   = "workspace-operator.io/cluster"
	TagWorkspace = "workspace-operator.io/workspace"
	managedBy    = "workspace-operator"
)

// Owner identifies the workspace a resource belongs to.
type Owner struct {
	Cluster   string
	Workspace string
}

func (o Owner) tags() map[string]string {
	return map[string]string{TagManagedBy: managedBy, TagCluster: o.Cluster, TagWorkspace: o.Workspace}
}

// owns reports whether tags name this owner.
func (o Owner) owns(tags map[string]string) bool {
	return tags[TagManagedBy] == managedBy && tags[TagCluster] == o.Cluster && tags[TagWorkspace] == o.Workspace
}

// maxAttempts bounds the SDK's retries of one call. A reconcile that still fails is
// retried later with the controller's own backoff.
const maxAttempts = 8

// LoadConfig is the SDK configuration for one region: the default credential chain (IRSA
// or EKS Pod Identity in a cluster), the adaptive retry mode, which backs off on
// throttling as well as on 5xx, and the operator's call metrics. Endpoints are the SDK's
// own configuration (AWS_ENDPOINT_URL_<SERVICE>, AWS_ENDPOINT_URL, the shared config
// file's services sections), which each service client resolves for itself; setting one
// here would override all of them.
func LoadConfig(ctx context.Context, region string) (aws.Config, error) {
	cfg, err := awsconfig.LoadDefaultConfig(ctx,
		awsconfig.WithRegion(region),
		awsconfig.WithRetryer(func() aws.Retryer {
			return retry.NewAdaptiveMode(func(o *retry.AdaptiveModeOptions) {
				o.StandardOptions = append(o.StandardOptions, func(so *retry.StandardOptions) { so.MaxAttempts = maxAttempts })
			})
		}),
	)
	if err != nil {
		return aws.Config{}, fmt.Errorf("load AWS configuration for %s: %w", region, err)
	}
	return Instrument(cfg), nil
}
