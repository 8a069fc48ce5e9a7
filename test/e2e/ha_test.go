package e2e

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	networkingv1 "k8s.io/api/networking/v1"

	"github.com/workspace-operator/workspace-operator/internal/localstack"
)

// leaderMetric matches controller-runtime's leader election gauge at 1.
var leaderMetric = regexp.MustCompile(`(?m)^leader_election_master_status\{[^}]*\} 1$`)

func isLeader(o *localstack.Operator) bool {
	resp, err := http.Get(o.MetricsURL())
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return err == nil && leaderMetric.Match(body)
}

// highAvailabilitySpecs run two replicas with leader election, kill the leader and check
// the standby takes over and repairs drift, then go back to the suite's single operator.
func highAvailabilitySpecs() {
	It("hands over to a standby replica when the leader is killed", func() {
		Expect(operator.Stop()).To(Succeed())
		replicas := make([]*localstack.Operator, 2)
		for i := range replicas {
			opts := operatorOptions
			opts.Name = fmt.Sprintf("operator-%d", i)
			opts.Args = append(append([]string(nil), opts.Args...), "--leader-elect", "--leader-election-namespace=kube-system")
			var err error
			replicas[i], err = stack.StartOperator(ctx, opts)
			Expect(err).NotTo(HaveOccurred())
		}
		DeferCleanup(func() {
			for _, r := range replicas {
				_ = r.Stop()
			}
			var err error
			operator, err = stack.StartOperator(ctx, operatorOptions)
			Expect(err).NotTo(HaveOccurred())
		})

		var leader, standby *localstack.Operator
		Eventually(func(g Gomega) {
			leaders := 0
			for i, r := range replicas {
				if isLeader(r) {
					leaders++
					leader, standby = r, replicas[1-i]
				}
			}
			g.Expect(leaders).To(Equal(1), "exactly one leader")
		}, readyTimeout, interval).Should(Succeed())

		By("killing the leader without warning")
		Expect(leader.Kill()).To(Succeed())
		Eventually(func() bool { return isLeader(standby) }, 60*time.Second, interval).Should(BeTrue(),
			"the standby takes the Lease once the dead leader's expires")

		By("the new leader repairing drift")
		policy := &networkingv1.NetworkPolicy{}
		Expect(k8sClient.Get(ctx, key("ws-acme", "default-deny"), policy)).To(Succeed())
		Expect(k8sClient.Delete(ctx, policy)).To(Succeed())
		Eventually(func(g Gomega) {
			restored := &networkingv1.NetworkPolicy{}
			g.Expect(k8sClient.Get(ctx, key("ws-acme", "default-deny"), restored)).To(Succeed())
			g.Expect(restored.UID).NotTo(Equal(policy.UID))
		}, repairTimeout, interval).Should(Succeed())
	})
}
