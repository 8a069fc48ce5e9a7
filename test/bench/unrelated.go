package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
)

// Unrelated objects, created before any operator starts. The operator never watches
// ConfigMaps or Secrets, so they show that nothing lists them; the namespaces hold
// objects of the kinds it does watch (ServiceAccounts, RoleBindings, NetworkPolicies,
// CronJobs), which only its label-scoped cache keeps out of its memory.
const (
	unrelatedDataNamespace = "bench-unrelated-data"
	unrelatedNamespaces    = 50
	unrelatedPayload       = 2 << 10 // bytes of data per object
)

// UnrelatedObjects is what the cluster held besides the workspaces.
type UnrelatedObjects struct {
	ConfigMaps       int     `json:"configMaps"`
	Secrets          int     `json:"secrets"`
	Namespaces       int     `json:"namespaces"`
	WatchedKindCount int     `json:"watchedKindObjects"`
	PayloadBytes     int     `json:"payloadBytesEach"`
	Seconds          float64 `json:"secondsToCreate"`
}

// unrelatedLabels mark the objects as someone else's: the same key the operator selects
// on, another value.
var unrelatedLabels = map[string]string{tenancyv1alpha1.ManagedByLabel: "someone-else", "app": "unrelated"}

func (e *env) createUnrelated(ctx context.Context, total int) (UnrelatedObjects, error) {
	start := time.Now()
	watched := total / 5
	perKind := watched / (unrelatedNamespaces * 4)
	data := total - perKind*unrelatedNamespaces*4
	u := UnrelatedObjects{
		ConfigMaps: data / 2, Secrets: data - data/2, Namespaces: unrelatedNamespaces + 1,
		WatchedKindCount: perKind * unrelatedNamespaces * 4, PayloadBytes: unrelatedPayload,
	}
	logf("creating %d unrelated objects: %d ConfigMaps and %d Secrets of %d bytes, %d namespaces with %d objects of watched kinds",
		total, u.ConfigMaps, u.Secrets, unrelatedPayload, unrelatedNamespaces, u.WatchedKindCount)

	var objs []client.Object
	objs = append(objs, unrelatedNamespace(unrelatedDataNamespace))
	for i := range unrelatedNamespaces {
		objs = append(objs, unrelatedNamespace(fmt.Sprintf("bench-unrelated-%02d", i)))
	}
	if err := e.createAll(ctx, objs); err != nil {
		return u, err
	}

	objs = objs[:0]
	payload := strings.Repeat("x", unrelatedPayload)
	for i := range u.ConfigMaps {
		objs = append(objs, &corev1.ConfigMap{ObjectMeta: unrelatedMeta(unrelatedDataNamespace, "config-%05d", i), Data: map[string]string{"payload": payload}})
	}
	for i := range u.Secrets {
		objs = append(objs, &corev1.Secret{ObjectMeta: unrelatedMeta(unrelatedDataNamespace, "secret-%05d", i), StringData: map[string]string{"payload": payload}})
	}
	for n := range unrelatedNamespaces {
		ns := fmt.Sprintf("bench-unrelated-%02d", n)
		for i := range perKind {
			objs = append(objs, watchedKinds(ns, i)...)
		}
	}
	if err := e.createAll(ctx, objs); err != nil {
		return u, err
	}
	if err := e.waitForNamespaceDefaults(ctx); err != nil {
		return u, err
	}
	u.Seconds = time.Since(start).Seconds()
	return u, nil
}

func unrelatedNamespace(name string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: unrelatedLabels}}
}

func unrelatedMeta(namespace, format string, i int) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name: fmt.Sprintf(format, i), Namespace: namespace, Labels: unrelatedLabels,
		// Weight, so that a cache that did hold them would show in the operator's memory.
		Annotations: map[string]string{"bench/padding": strings.Repeat("y", 512)},
	}
}

// watchedKinds are one object of each kind the operator watches with the label-scoped cache.
func watchedKinds(namespace string, i int) []client.Object {
	return []client.Object{
		&corev1.ServiceAccount{ObjectMeta: unrelatedMeta(namespace, "app-%02d", i)},
		&rbacv1.RoleBinding{
			ObjectMeta: unrelatedMeta(namespace, "app-%02d", i),
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "view"},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: fmt.Sprintf("app-%02d", i), Namespace: namespace}},
		},
		&networkingv1.NetworkPolicy{
			ObjectMeta: unrelatedMeta(namespace, "app-%02d", i),
			Spec:       networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}},
		},
		&batchv1.CronJob{
			ObjectMeta: unrelatedMeta(namespace, "app-%02d", i),
			Spec: batchv1.CronJobSpec{
				Schedule: "0 3 * * *",
				JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
					RestartPolicy: corev1.RestartPolicyNever,
					Containers:    []corev1.Container{{Name: "app", Image: "registry.example/app:1"}},
				}}}},
			},
		},
	}
}

// createAll creates objs with the bench's workers.
func (e *env) createAll(ctx context.Context, objs []client.Object) error {
	return parallel(ctx, e.cfg.workers, len(objs), func(ctx context.Context, i int) error {
		if err := e.client.Create(ctx, objs[i]); err != nil {
			return fmt.Errorf("create %T %s/%s: %w", objs[i], objs[i].GetNamespace(), objs[i].GetName(), err)
		}
		return nil
	})
}

// waitForNamespaceDefaults waits until kube-controller-manager has given every namespace
// its default ServiceAccount and root CA ConfigMap, so that this work, triggered by the
// unrelated namespaces, is not counted against the phases that follow.
func (e *env) waitForNamespaceDefaults(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var namespaces corev1.NamespaceList
	if err := e.client.List(ctx, &namespaces); err != nil {
		return err
	}
	for {
		var accounts corev1.ServiceAccountList
		var configMaps corev1.ConfigMapList
		err := e.client.List(ctx, &accounts, client.MatchingFields{"metadata.name": "default"})
		if err == nil {
			err = e.client.List(ctx, &configMaps, client.MatchingFields{"metadata.name": "kube-root-ca.crt"})
		}
		if err == nil && len(accounts.Items) >= len(namespaces.Items) && len(configMaps.Items) >= len(namespaces.Items) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kube-controller-manager has not set up every namespace: %w", errors.Join(ctx.Err(), err))
		case <-time.After(250 * time.Millisecond):
		}
	}
}
