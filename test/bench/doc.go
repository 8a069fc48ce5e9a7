// Command bench measures the operator against the floor of what its work costs on the
// same machine, on one freshly started local stack (internal/localstack): etcd,
// kube-apiserver and kube-controller-manager built from source, the AWS emulator
// (test/awsemu, in this process so that its call accounting can be read) and the
// operator binary.
//
// The phases run in this order and leave the cluster as they found it, apart from the
// purge records that secure deletion keeps:
//
//  1. Unrelated objects: ConfigMaps and Secrets with data, and namespaces holding
//     objects of the kinds the operator watches, which its label-scoped cache must ignore.
//  2. Calibration: the operator provisions one Workspace alone. Every object labelled
//     for it becomes the template of the floor, so that the floor writes exactly what the
//     operator writes, and the requests and AWS calls of one workspace are recorded.
//  3. Floor: with no operator running, a plain client with no rate limit writes N
//     Workspaces, every child object and one status per Workspace, then deletes them.
//  4. Operator: a fresh operator process provisions N Workspaces; then a quiet period
//     (steady state), single Workspaces created one at a time, and secure deletion.
//
// With -pprof the operator serves pprof, and CPU profiles of provisioning and deletion and
// a heap profile after provisioning are written to -dir with text summaries; -perf samples
// kube-apiserver with Linux perf (profile.go).
//
// Run it through make bench, or:
//
//	KUBEBUILDER_ASSETS=$(hack/controlplane.sh) go run ./test/bench -workspaces 100
package main
