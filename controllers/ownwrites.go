package controllers

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/resourceversion"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// cacheLagRetry is how soon a reconcile that found the cache behind the operator's own
// write runs again; the informer is usually a few milliseconds behind.
const cacheLagRetry = 100 * time.Millisecond

// ownWrites remembers the resourceVersion of the operator's last write to each Workspace.
//
// A reconcile's child writes queue the next reconcile through the child watches, often
// before the informer has delivered the same reconcile's status write. A reconcile working
// from that older copy would redo the work: patch the status again, emit every transition
// event a second time and, as observedGeneration looks stale, call AWS again. Resource
// versions are comparable (KEP-5504), so a cached copy older than the last write is known
// to be stale and the reconcile waits for the informer instead.
type ownWrites struct {
	mu       sync.Mutex
	versions map[types.UID]string
}

func newOwnWrites() *ownWrites {
	return &ownWrites{versions: map[types.UID]string{}}
}

// record notes obj's resourceVersion as returned by a write.
func (w *ownWrites) record(obj client.Object) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.versions[obj.GetUID()] = obj.GetResourceVersion()
}

// behind reports whether obj, read from the cache, predates the operator's last write to
// it. Once the cache has caught up, the write is forgotten.
func (w *ownWrites) behind(obj client.Object) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	written, ok := w.versions[obj.GetUID()]
	if !ok {
		return false
	}
	order, err := resourceversion.CompareResourceVersion(obj.GetResourceVersion(), written)
	if err == nil && order < 0 {
		return true
	}
	// Caught up, or versions this API server does not let us compare: trust the cache.
	delete(w.versions, obj.GetUID())
	return false
}

func (w *ownWrites) forget(uid types.UID) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.versions, uid)
}
