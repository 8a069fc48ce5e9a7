package localstack

import "context"

// OperatorOptions describe how to run the operator binary.
type OperatorOptions struct {
	// Binary is the operator executable.
	Binary string
	// Args are added to its command line. They must not set --kubeconfig or the bind
	// addresses, which StartOperator chooses.
	Args []string
	// Env is added to its environment.
	Env []string
	// Name tells replicas apart in logs; it names the log file <Dir>/<Name>.log.
	// Defaults to "operator".
	Name string
	// NoWait makes StartOperator return as soon as the process runs, before it is ready,
	// for a test that kills it during its start; WaitReady waits for the rest.
	NoWait bool
}

// Operator is the operator binary running as a child of a Stack.
type Operator struct {
	*Process
	readyzURL  string
	metricsURL string
}

// StartOperator runs the operator binary against the stack as the admin user, with plain
// HTTP metrics and health probes on free loopback ports, and waits until it is ready
// (unless opts.NoWait).
// Its log is <Dir>/<Name>.log.
func (s *Stack) StartOperator(ctx context.Context, opts OperatorOptions) (*Operator, error) {
	probePort, err := freePort()
	if err != nil {
		return nil, err
	}
	metricsPort, err := freePort()
	if err != nil {
		return nil, err
	}
	o := &Operator{
		readyzURL:  "http://127.0.0.1:" + probePort + "/readyz",
		metricsURL: "http://127.0.0.1:" + metricsPort + "/metrics",
	}
	name := opts.Name
	if name == "" {
		name = "operator"
	}
	o.Process, err = s.StartProcess(ProcessOptions{
		Name: name,
		Path: opts.Binary,
		Args: append([]string{
			"--kubeconfig=" + s.kubeconfig,
			"--metrics-secure=false",
			"--metrics-bind-address=127.0.0.1:" + metricsPort,
			"--health-probe-bind-address=127.0.0.1:" + probePort,
		}, opts.Args...),
		Env: opts.Env,
	})
	if err != nil {
		return nil, err
	}
	if opts.NoWait {
		return o, nil
	}
	if err := o.WaitReady(ctx); err != nil {
		s.abandon(o.Process)
		return nil, err
	}
	s.logf("operator %s is ready", opts.Binary)
	return o, nil
}

// WaitReady waits until the operator's readiness probe passes: its informers have synced.
func (o *Operator) WaitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	return o.WaitHealthy(ctx, o.readyzURL)
}

// MetricsURL is the operator's Prometheus endpoint.
func (o *Operator) MetricsURL() string {
	return o.metricsURL
}
