// Package csidriver is the local stack's stand-in for the EBS CSI driver
// (ebs.csi.aws.com): a CSI driver whose volumes are directories under a root
// directory, served with the kubelet plugin registration API from one process
// (cmd/local-csi), because neither the hostpath driver nor node-driver-registrar
// is served by the Go module proxy.
//
// It does what the operator relies on EBS for: CreateVolume and DeleteVolume,
// CreateSnapshot (a copy of the volume's directory keeping owners, modes, hard
// links, symlinks, device nodes, FIFOs, extended attributes and timestamps; ready
// to use when the call returns), DeleteSnapshot, ListSnapshots, volumes restored
// from a snapshot and cloned from a volume, a zone topology key, and bind-mount
// NodePublishVolume. It takes EBS's StorageClass parameters: type (recorded
// only), encrypted and kmsKeyId, recorded in the volume's metadata file and
// returned in its volume context, so a PersistentVolume shows its key in
// spec.csi.volumeAttributes. Snapshots and the volumes restored or cloned from
// them keep the source's key unless the request names another (EBS re-encrypts
// then). Unknown parameters, and encrypted=true without kmsKeyId, fail with
// InvalidArgument; EBS would use the account's default key there, which would
// hide a StorageClass that lost the workspace's key.
//
// What differs from EBS:
//   - Nothing is encrypted at rest: the key ID is bookkeeping. Tests can check that
//     the operator asks for the right key, not that the key protects the data.
//   - One machine: volumes live on the root's file system, capacity is recorded
//     (in whole GiB, as EBS sizes volumes) and not enforced, there is no attach step
//     and no volume limit unless --max-volumes-per-node sets one.
//   - Zones are labels: --zone names this node's, and a volume is created in it or
//     not at all (ResourceExhausted when the requisite topology excludes it).
//   - A snapshot is a file-by-file copy made while calls are serialised, so writes
//     after CreateSnapshot never reach it, but a file being written during the copy
//     may be caught half written where an EBS snapshot is crash-consistent.
//   - No expansion (external-resizer is not served by the module proxy), no raw
//     block volumes, no NodeGetVolumeStats, no ListVolumes.
//
// The stack must create these objects with it:
//
//	apiVersion: storage.k8s.io/v1
//	kind: CSIDriver
//	metadata: {name: local.csi.workspace-operator.io}
//	spec:
//	  attachRequired: false        # no ControllerPublishVolume, no external-attacher
//	  podInfoOnMount: false        # the driver needs nothing about the pod
//	  fsGroupPolicy: File          # the kubelet applies fsGroup (the driver does not), as it does for EBS's ext4
//	  volumeLifecycleModes: [Persistent]
//	  requiresRepublish: false
//	  storageCapacity: false
//	---
//	apiVersion: snapshot.storage.k8s.io/v1
//	kind: VolumeSnapshotClass
//	metadata: {name: local-csi}
//	driver: local.csi.workspace-operator.io
//	deletionPolicy: Delete
//
// and the operator is pointed at the driver (its StorageConfig Provisioner) so the
// workspace StorageClasses it builds read
//
//	provisioner: local.csi.workspace-operator.io
//	parameters: {type: gp3, encrypted: "true", kmsKeyId: <the workspace key ARN>}
//	volumeBindingMode: WaitForFirstConsumer
//
// A StorageClass with allowVolumeExpansion: true is accepted, but a resize stays
// pending for want of a resizer.
//
// external-provisioner runs with --csi-address=<endpoint>
// --feature-gates=Topology=true (so WaitForFirstConsumer passes the chosen node's
// zone) and csi-snapshotter with --csi-address=<endpoint>; the kubelet finds the
// driver through the registration socket <registration-dir>/<driver>-reg.sock.
//
// Copies hold the driver's lock for their length; the local stack's volumes are
// small. The driver runs as root: it bind-mounts, chowns and sets trusted and
// security extended attributes.
package csidriver
