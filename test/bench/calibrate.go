package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
)

// Calibration is one workspace provisioned and deleted by the operator alone.
type Calibration struct {
	// Objects counts, by kind, the objects labelled for the workspace: what the operator
	// creates for one workspace, and what the floor writes for each.
	Objects map[string]int `json:"objectsByKind"`
	// ObjectBytes is their JSON size by kind, without status.
	ObjectBytes  map[string]int `json:"objectBytesByKind"`
	TimeToReady  float64        `json:"timeToReadySeconds"`
	Create       Requests       `json:"create"`
	DeletionTime float64        `json:"deletionSeconds"`
	Delete       Requests       `json:"delete"`
	// ZeroesWorkspaceClasses says the calibration workspace's quota gave its neighbour's
	// StorageClass zero storage: the operator zeroes other workspaces' classes, so the
	// floor's quotas must list every class written before them.
	ZeroesWorkspaceClasses bool `json:"zeroesWorkspaceClasses"`
	templates              []*unstructured.Unstructured
	statusTemplate         []byte
}

// calibrate has an operator provision a neighbour workspace, then the calibration
// workspace, copies everything it made for the latter as the floor's templates, and
// deletes both through the operator. The neighbour shows whether one workspace's objects
// depend on the others'.
func (e *env) calibrate(ctx context.Context, flags operatorFlags) (*Calibration, error) {
	op, err := e.startOperator(ctx, flags, "operator-calibration")
	if err != nil {
		return nil, err
	}
	defer op.stop()
	c := &Calibration{}

	var neighbourSeconds float64
	if err := e.provisionOne(ctx, neighbourName, &neighbourSeconds); err != nil {
		return nil, err
	}
	time.Sleep(e.cfg.settle)
	before, err := e.snapshot(ctx, op)
	if err != nil {
		return nil, err
	}
	if err := e.provisionOne(ctx, calibrationName, &c.TimeToReady); err != nil {
		return nil, err
	}
	// Reconciles that the last writes trigger still belong to provisioning.
	time.Sleep(e.cfg.settle)
	ready, err := e.snapshot(ctx, op)
	if err != nil {
		return nil, err
	}
	c.Create = requestsBetween(before, ready)

	if err := e.copyTemplates(ctx, c); err != nil {
		return nil, err
	}

	start := time.Now()
	if _, err := e.deleteWorkspaces(ctx, []string{calibrationName}); err != nil {
		return nil, err
	}
	if _, err := e.tracker.waitAll(ctx, workspaceGoneTimes, []string{calibrationName}); err != nil {
		return nil, err
	}
	c.DeletionTime = time.Since(start).Seconds()
	deleted, err := e.snapshot(ctx, op)
	if err != nil {
		return nil, err
	}
	c.Delete = requestsBetween(ready, deleted)
	if _, err := e.deleteWorkspaces(ctx, []string{neighbourName}); err != nil {
		return nil, err
	}
	if _, err := e.tracker.waitAll(ctx, workspaceGoneTimes, []string{neighbourName}); err != nil {
		return nil, err
	}
	logf("calibration: Ready in %.2fs with %v, zeroing other workspaces' classes: %t; deleted in %.1fs",
		c.TimeToReady, c.Objects, c.ZeroesWorkspaceClasses, c.DeletionTime)
	return c, nil
}

// provisionOne creates a Workspace and waits until the watch sees it Ready.
func (e *env) provisionOne(ctx context.Context, name string, seconds *float64) error {
	created, err := e.createWorkspaces(ctx, []string{name})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	ready, err := e.tracker.waitAll(ctx, readyTimes, []string{name})
	if err != nil {
		return fmt.Errorf("workspace %s: %w", name, err)
	}
	*seconds = ready[name].Sub(created[name]).Seconds()
	return nil
}

// copyTemplates reads every object labelled for the calibration workspace, of any kind
// the API server serves, and the Workspace's status.
func (e *env) copyTemplates(ctx context.Context, c *Calibration) error {
	objs, err := e.labelled(ctx, calibrationName)
	if err != nil {
		return err
	}
	c.Objects, c.ObjectBytes = map[string]int{}, map[string]int{}
	for _, obj := range objs {
		t := template(obj)
		if t.GetKind() == "ResourceQuota" {
			// The floor adds the classes its own workspaces create, if the operator does.
			if c.ZeroesWorkspaceClasses, err = dropClass(t.Object, neighbourClass, "spec", "hard"); err != nil {
				return err
			}
		}
		data, err := json.Marshal(t.Object)
		if err != nil {
			return err
		}
		c.Objects[t.GetKind()]++
		c.ObjectBytes[t.GetKind()] += len(data)
		c.templates = append(c.templates, t)
	}
	slices.SortStableFunc(c.templates, func(a, b *unstructured.Unstructured) int { return kindRank(a) - kindRank(b) })

	ws := &tenancyv1alpha1.Workspace{}
	if err := e.client.Get(ctx, client.ObjectKey{Name: calibrationName}, ws); err != nil {
		return err
	}
	status, err := runtime.DefaultUnstructuredConverter.ToUnstructured(ws)
	if err != nil {
		return err
	}
	if _, err := dropClass(status, neighbourClass, "status", "quota", "hard"); err != nil {
		return err
	}
	c.statusTemplate, err = json.Marshal(map[string]any{"status": status["status"]})
	return err
}

// dropClass removes the entries of a quota's hard limits at fields that name class, and
// reports whether there were any.
func dropClass(obj map[string]any, class string, fields ...string) (bool, error) {
	hard, found, err := unstructured.NestedMap(obj, fields...)
	if err != nil || !found {
		return false, err
	}
	dropped := false
	for name := range hard {
		if strings.HasPrefix(name, class+".") {
			delete(hard, name)
			dropped = true
		}
	}
	return dropped, unstructured.SetNestedMap(obj, hard, fields...)
}

// labelled lists the objects of every listable resource that carry the operator's
// labels for workspace.
func (e *env) labelled(ctx context.Context, workspace string) ([]*unstructured.Unstructured, error) {
	lists, err := e.discovery.ServerPreferredResources()
	if err != nil && len(lists) == 0 {
		return nil, fmt.Errorf("discover resources: %w", err)
	}
	selector := labels.SelectorFromSet(labels.Set{
		tenancyv1alpha1.ManagedByLabel: tenancyv1alpha1.ManagedByValue,
		tenancyv1alpha1.WorkspaceLabel: workspace,
	}).String()
	var out []*unstructured.Unstructured
	for _, list := range lists {
		gv, err := schema.ParseGroupVersion(list.GroupVersion)
		if err != nil {
			return nil, err
		}
		for _, r := range list.APIResources {
			if strings.Contains(r.Name, "/") || !slices.Contains(r.Verbs, "list") {
				continue
			}
			items, err := e.dynamic.Resource(gv.WithResource(r.Name)).List(ctx, metav1.ListOptions{LabelSelector: selector})
			if err != nil {
				return nil, fmt.Errorf("list %s: %w", r.Name, err)
			}
			for i := range items.Items {
				items.Items[i].SetAPIVersion(gv.String())
				items.Items[i].SetKind(r.Kind)
				out = append(out, &items.Items[i])
			}
		}
	}
	return out, nil
}

// template is obj as a client would write it: no status and none of the fields the API
// server sets.
func template(obj *unstructured.Unstructured) *unstructured.Unstructured {
	t := obj.DeepCopy()
	unstructured.RemoveNestedField(t.Object, "status")
	for _, field := range []string{"uid", "resourceVersion", "creationTimestamp", "generation", "managedFields", "selfLink"} {
		unstructured.RemoveNestedField(t.Object, "metadata", field)
	}
	return t
}

// kindRank orders the floor's writes as the operator's reconcile does: the namespace
// first, since everything else lives in it.
func kindRank(obj *unstructured.Unstructured) int {
	order := []string{"Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange", "RoleBinding", "StorageClass", "ServiceAccount", "CronJob"}
	if i := slices.Index(order, obj.GetKind()); i >= 0 {
		return i
	}
	return len(order)
}

// instantiate is the calibration workspace's objects for workspace name: every name,
// label and reference that embeds the calibration workspace's name now embeds name.
func (c *Calibration) instantiate(name string) ([]*unstructured.Unstructured, error) {
	out := make([]*unstructured.Unstructured, 0, len(c.templates))
	for _, t := range c.templates {
		data, err := json.Marshal(t.Object)
		if err != nil {
			return nil, err
		}
		obj := &unstructured.Unstructured{}
		if err := json.Unmarshal(renamed(data, name), &obj.Object); err != nil {
			return nil, err
		}
		out = append(out, obj)
	}
	return out, nil
}

// status is the calibration workspace's status for workspace name, as a merge patch.
func (c *Calibration) status(name string) []byte {
	return renamed(c.statusTemplate, name)
}

func renamed(data []byte, name string) []byte {
	return bytes.ReplaceAll(data, []byte(calibrationName), []byte(name))
}
