package datamover

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	tenancyv1alpha1 "github.com/workspace-operator/workspace-operator/api/v1alpha1"
)

var _ = Describe("Pre-backup hooks", func() {
	It("run in each running pod that mounts the volume and asks for one, once, before its snapshot", func() {
		newTenant("quill", map[string]string{"db": "zone-a"})
		newAppPod("ws-quill", "postgres-0", "db", map[string]string{
			PreBackupHookCommandAnnotation: `["/bin/sh", "-c", "psql -c CHECKPOINT"]`,
		})
		newAppPod("ws-quill", "no-hook", "db", nil)
		newRun("quill-1", "quill")
		Eventually(func(g Gomega) {
			g.Expect(getRun(g, "quill-1").Status.Phase).To(Equal(tenancyv1alpha1.BackupRunSucceeded))
		}, timeout, interval).Should(Succeed())
		ran := hookExecutor.ran("postgres-0")
		Expect(ran).To(HaveLen(1), "once per run")
		Expect(ran[0].container).To(Equal("db"))
		Expect(ran[0].command).To(Equal([]string{"/bin/sh", "-c", "psql -c CHECKPOINT"}))
		Expect(ran[0].snapshotExisted).To(BeFalse(), "the hook runs before the snapshot is taken")
		Expect(hookExecutor.ran("no-hook")).To(BeEmpty())
	})

	It("fail the volume when a hook fails, before its snapshot; on-error: Continue snapshots anyway", func() {
		newTenant("inkwell", map[string]string{"db": "zone-a", "logs": "zone-a"})
		hookExecutor.mu.Lock()
		hookExecutor.failures["db-0"] = "FATAL: the database system is shutting down"
		hookExecutor.failures["logger-0"] = "flush failed"
		hookExecutor.mu.Unlock()
		newAppPod("ws-inkwell", "db-0", "db", map[string]string{PreBackupHookCommandAnnotation: `["checkpoint"]`})
		newAppPod("ws-inkwell", "logger-0", "logs", map[string]string{
			PreBackupHookCommandAnnotation: `["flush"]`, PreBackupHookOnErrorAnnotation: "Continue",
		})
		newRun("inkwell-1", "inkwell")
		Eventually(func(g Gomega) {
			g.Expect(getRun(g, "inkwell-1").Status.Phase).To(Equal(tenancyv1alpha1.BackupRunPartiallyFailed))
		}, timeout, interval).Should(Succeed())
		run := getRun(Default, "inkwell-1")
		db := volumeStatus(run, "db")
		Expect(db.Phase).To(Equal(tenancyv1alpha1.VolumeBackupFailed))
		Expect(db.Message).To(ContainSubstring("pre-backup hook in pod ws-inkwell/db-0"))
		Expect(db.Message).To(ContainSubstring("command terminated with exit code 1: FATAL: the database system is shutting down"))
		Expect(volumeStatus(run, "logs").Phase).To(Equal(tenancyv1alpha1.VolumeBackupSucceeded))
		Expect(hookExecutor.ran("db-0")).To(HaveLen(1), "a failed hook is not retried within the run")
	})
	It("fail the volume when a hook outlives its timeout", func() {
		newTenant("quire", map[string]string{"db": "zone-a"})
		hookExecutor.mu.Lock()
		hookExecutor.failures["stuck-0"] = hangs
		hookExecutor.mu.Unlock()
		newAppPod("ws-quire", "stuck-0", "db", map[string]string{
			PreBackupHookCommandAnnotation: `["checkpoint"]`, PreBackupHookTimeoutAnnotation: "200ms",
		})
		newRun("quire-1", "quire")
		Eventually(func(g Gomega) {
			g.Expect(getRun(g, "quire-1").Status.Phase).To(Equal(tenancyv1alpha1.BackupRunFailed))
		}, timeout, interval).Should(Succeed())
		Expect(volumeStatus(getRun(Default, "quire-1"), "db").Message).To(ContainSubstring("timed out after 200ms"))
	})
})
