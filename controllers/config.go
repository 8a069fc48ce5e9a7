package controllers

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
)

// Config is the operator-wide policy that Workspaces do not choose for themselves.
type Config struct {
	// NamespacePrefix is prepended to a Workspace's name to derive its namespace.
	NamespacePrefix string

	// IngressNamespaces may send traffic into a workspace whose spec names none, typically
	// the ingress controller's namespace.
	IngressNamespaces []string

	// DNSNamespace and DNSPodLabels select the cluster DNS pods, the only DNS servers
	// workspace pods may query.
	DNSNamespace string
	DNSPodLabels map[string]string
	// ClusterCIDRs are the cluster's pod and service ranges, cut out of every egress rule
	// like the cloud metadata address, so that a workspace's egress to the internet never
	// reaches the rest of the cluster.
	ClusterCIDRs []string

	// DefaultIssuer signs certificates for workspaces whose spec names no issuer.
	DefaultIssuer tenancyv1alpha1.IssuerReference

	// OwnerClusterRole is bound to a workspace's owners in its namespace.
	OwnerClusterRole string

	// StalledRetryInterval is how long to wait before retrying a Workspace that cannot make
	// progress until someone changes its spec or the cluster.
	StalledRetryInterval time.Duration

	// Storage is where and how workspace data is encrypted at rest.
	Storage StorageConfig

	// Backup is how workspace backups run.
	Backup BackupConfig

	// PurgeWindow is how long a deleted workspace's data stays recoverable: KMS keys are
	// scheduled for deletion with this window and everything else is destroyed after it.
	PurgeWindow time.Duration
	// PurgeAuditPeriod is how long a WorkspacePurge is kept once it holds the evidence.
	PurgeAuditPeriod time.Duration
}

// BackupConfig runs the backup agent: the operator's own binary in its own image, so
// that there is no second image to patch.
type BackupConfig struct {
	// Image and Command run the agent: the operator image and its binary.
	Image   string
	Command []string
	// MaxRetentionDays is the policy maximum; a workspace may only lower it.
	MaxRetentionDays int32
	// Hour is the UTC hour of the default daily schedule.
	Hour int
	// StaleAfter is how old the last successful backup may be before BackupsHealthy
	// turns False: a day plus slack for a slow run.
	StaleAfter time.Duration
	// RoleARNTemplate, like StorageConfig.WorkloadRoleARNTemplate, gives the IAM role of
	// the backup ServiceAccount: the backup buckets and the keys, nothing else.
	RoleARNTemplate string
	// MoverNamespace, when set, moves the schedule to the snapshot data mover: the backup
	// CronJob lives there and asks for WorkspaceBackups, and nothing runs in the tenant's
	// namespace. Empty keeps the CronJob that mounts every volume in the tenant's namespace.
	MoverNamespace string
	// Env is set on the agent's container: the AWS SDK endpoint settings the operator runs
	// with (see AWSEndpointEnv), so that the agent resolves the same endpoints.
	Env []corev1.EnvVar
	// S3PathStyle has the agent address buckets in the URL path rather than the host
	// name, as the operator's own S3 clients do; the SDK has no setting of its own for it.
	S3PathStyle bool
}

// AWSEndpointEnv picks the AWS SDK's endpoint settings out of an environment such as
// os.Environ(): AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_<SERVICE> and
// AWS_IGNORE_CONFIGURED_ENDPOINT_URLS, sorted by name so that the pods built from them do
// not change with the order of the environment. Empty values are left out: the SDK ignores
// them too. The shared config file's services sections are not among them: that file
// stays in the operator's pod.
func AWSEndpointEnv(environ []string) []corev1.EnvVar {
	var env []corev1.EnvVar
	for _, kv := range environ {
		name, value, _ := strings.Cut(kv, "=")
		if value == "" {
			continue
		}
		if name == "AWS_ENDPOINT_URL" || strings.HasPrefix(name, "AWS_ENDPOINT_URL_") || name == "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS" {
			env = append(env, corev1.EnvVar{Name: name, Value: value})
		}
	}
	slices.SortFunc(env, func(a, b corev1.EnvVar) int { return strings.Compare(a.Name, b.Name) })
	return env
}

// StorageConfig places a workspace's keys and buckets in AWS and its volumes on an
// encrypted StorageClass.
type StorageConfig struct {
	// ClusterName is written into every AWS resource's tags, so that several clusters can
	// share an account without ever adopting each other's keys or buckets.
	ClusterName string
	// Region holds the primary key and bucket.
	Region string
	// ReplicaRegion, when set, holds a second key and a replica bucket.
	ReplicaRegion string
	// ReplicationRoleARN is the IAM role S3 replication assumes; required with ReplicaRegion.
	ReplicationRoleARN string
	// DriftCheckInterval is how often AWS settings are read back and repaired. Each check
	// is jittered by up to a fifth of it so that workspaces do not check in lockstep.
	DriftCheckInterval time.Duration
	// Provisioner and Parameters make the encrypted StorageClass; KeyParameter is the
	// parameter that receives the key ARN.
	Provisioner  string
	Parameters   map[string]string
	KeyParameter string
	// VolumeDriverRoleARN, when set, is the IAM role that creates the workspaces' volumes
	// (the EBS CSI driver's). EncryptionReady then turns True only once the key's policy
	// proves that role may use the key: EC2 accepts a volume under a key its caller
	// cannot use, and then silently rolls it back.
	VolumeDriverRoleARN string
	// WorkloadRoleARNTemplate, a text/template over .Workspace, .Namespace and .Cluster,
	// gives the IAM role the workspace's ServiceAccount assumes. Empty leaves it unset.
	WorkloadRoleARNTemplate string
}

// DefaultConfig is the configuration the operator runs with when no flag overrides it.
func DefaultConfig() Config {
	return Config{
		NamespacePrefix:      "ws-",
		IngressNamespaces:    []string{"ingress-nginx"},
		DNSNamespace:         "kube-system",
		DNSPodLabels:         map[string]string{"k8s-app": "kube-dns"},
		DefaultIssuer:        tenancyv1alpha1.IssuerReference{Name: "letsencrypt", Kind: "ClusterIssuer", Group: "cert-manager.io"},
		OwnerClusterRole:     "workspace-owner",
		StalledRetryInterval: 5 * time.Minute,
		Storage: StorageConfig{
			ClusterName:        "default",
			DriftCheckInterval: 10 * time.Minute,
			Provisioner:        "ebs.csi.aws.com",
			Parameters:         map[string]string{"type": "gp3"},
			KeyParameter:       "kmsKeyId",
		},
		PurgeWindow:      7 * 24 * time.Hour,
		PurgeAuditPeriod: 90 * 24 * time.Hour,
		Backup: BackupConfig{
			Image:            "ghcr.io/workspace-operator/workspace-operator:0.1.0",
			Command:          []string{"/manager"},
			MaxRetentionDays: 7,
			Hour:             2,
			StaleAfter:       26 * time.Hour,
		},
	}
}

// BackupRoleARN renders --backup-role-arn-template for a workspace and its namespace: the
// role of the data mover's ServiceAccount for that workspace.
func (c Config) BackupRoleARN(workspace, namespace string) (string, error) {
	ws := &tenancyv1alpha1.Workspace{ObjectMeta: metav1.ObjectMeta{Name: workspace}}
	return renderRoleARN(c.Backup.RoleARNTemplate, ws, namespace, c.Storage.ClusterName)
}

// Validate reports the first setting that would make the operator build invalid objects.
func (c Config) Validate() error {
	if errs := validation.IsDNS1123Label(strings.TrimSuffix(c.NamespacePrefix, "-") + "x"); c.NamespacePrefix != "" && len(errs) > 0 {
		return fmt.Errorf("namespace prefix %q: %s", c.NamespacePrefix, strings.Join(errs, "; "))
	}
	for _, cidr := range c.ClusterCIDRs {
		if _, err := netip.ParsePrefix(cidr); err != nil {
			return fmt.Errorf("cluster pod or service CIDR %q: %w", cidr, err)
		}
	}
	for _, ns := range append([]string{c.DNSNamespace}, c.IngressNamespaces...) {
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return fmt.Errorf("namespace %q: %s", ns, strings.Join(errs, "; "))
		}
	}
	if len(c.DNSPodLabels) == 0 {
		return fmt.Errorf("DNS pod labels must select the cluster DNS pods")
	}
	if c.DefaultIssuer.Name == "" {
		return fmt.Errorf("default issuer name must be set")
	}
	if c.OwnerClusterRole == "" {
		return fmt.Errorf("owner ClusterRole must be set")
	}
	if c.StalledRetryInterval <= 0 {
		return fmt.Errorf("stalled retry interval must be positive")
	}
	if err := c.Storage.validate(); err != nil {
		return err
	}
	if err := c.validatePurge(); err != nil {
		return err
	}
	return c.Backup.validate()
}

// validatePurge keeps the purge window within what KMS allows as a key deletion window
// (7 to 30 days, in whole days) and never shorter than the backups it must outlive.
func (c Config) validatePurge() error {
	day := 24 * time.Hour
	switch {
	case c.PurgeWindow < 7*day || c.PurgeWindow > 30*day || c.PurgeWindow%day != 0:
		return fmt.Errorf("purge window %s must be a whole number of days from 7 to 30, the bounds of a KMS key deletion window", c.PurgeWindow)
	case c.PurgeWindow < time.Duration(c.Backup.MaxRetentionDays)*day:
		return fmt.Errorf("purge window %s is shorter than the backup retention of %d days", c.PurgeWindow, c.Backup.MaxRetentionDays)
	case c.PurgeAuditPeriod < 0:
		return fmt.Errorf("purge audit period %s is negative", c.PurgeAuditPeriod)
	}
	return nil
}

func (b BackupConfig) validate() error {
	switch {
	case b.Image == "" || len(b.Command) == 0:
		return fmt.Errorf("the backup image and command must be set")
	case b.MaxRetentionDays < 1:
		return fmt.Errorf("maximum backup retention %d days must be at least 1", b.MaxRetentionDays)
	case b.Hour < 0 || b.Hour > 23:
		return fmt.Errorf("backup hour %d is not an hour of the day", b.Hour)
	case b.StaleAfter < time.Hour:
		return fmt.Errorf("backup staleness %s is under an hour", b.StaleAfter)
	}
	if _, err := parseRoleTemplate(b.RoleARNTemplate); err != nil {
		return err
	}
	return nil
}

func (s StorageConfig) validate() error {
	switch {
	case s.ClusterName == "":
		return fmt.Errorf("cluster name must be set: it tags every AWS resource")
	case s.ReplicaRegion != "" && s.ReplicaRegion == s.Region:
		return fmt.Errorf("replica region %s must differ from the primary region", s.ReplicaRegion)
	case s.ReplicaRegion != "" && s.ReplicationRoleARN == "":
		return fmt.Errorf("a replica region needs the IAM role S3 replication assumes")
	case s.DriftCheckInterval < time.Minute:
		return fmt.Errorf("AWS drift check interval %s is under a minute", s.DriftCheckInterval)
	case s.Provisioner == "" || s.KeyParameter == "":
		return fmt.Errorf("the StorageClass provisioner and key parameter must be set")
	}
	if _, err := parseRoleTemplate(s.WorkloadRoleARNTemplate); err != nil {
		return err
	}
	return nil
}
