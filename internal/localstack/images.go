package localstack

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Image is a single-layer image made of static binaries, built without a registry or a
// container builder.
type Image struct {
	// Ref names the image, as pods refer to it (with imagePullPolicy Never or IfNotPresent).
	Ref string
	// Files maps absolute paths in the image to files on this machine, copied with mode 0755.
	Files map[string]string
	// Entrypoint is the image's command.
	Entrypoint []string
	// User is the image's default user, numeric so that runAsNonRoot can verify it.
	User string
}

// WriteImage writes img as an image archive that containerd imports (`ctr images import`).
func WriteImage(img Image, archive string) error {
	ref, err := name.ParseReference(img.Ref)
	if err != nil {
		return fmt.Errorf("image reference %q: %w", img.Ref, err)
	}
	layerTar, err := imageLayer(img.Files)
	if err != nil {
		return err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	})
	if err != nil {
		return err
	}
	image, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return err
	}
	config, err := image.ConfigFile()
	if err != nil {
		return err
	}
	config = config.DeepCopy()
	config.OS, config.Architecture = "linux", runtime.GOARCH
	config.Config.Entrypoint = img.Entrypoint
	config.Config.User = img.User
	config.Config.Env = []string{"PATH=/"}
	if image, err = mutate.ConfigFile(image, config); err != nil {
		return err
	}
	if err := tarball.WriteToFile(archive, ref, image); err != nil {
		return fmt.Errorf("write image %s: %w", img.Ref, err)
	}
	return nil
}

// imageLayer is a tar of files, with their parent directories and a /tmp that any user
// may write, as programs expect.
func imageLayer(files map[string]string) ([]byte, error) {
	var buf bytes.Buffer
	w := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0)
	dirs := map[string]bool{}
	addDir := func(dir string, mode int64) error {
		if dir == "/" || dirs[dir] {
			return nil
		}
		dirs[dir] = true
		return w.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir[1:] + "/", Mode: mode, ModTime: epoch})
	}
	if err := addDir("/tmp", 0o1777); err != nil {
		return nil, err
	}
	for dst, src := range files {
		data, err := os.ReadFile(src)
		if err != nil {
			return nil, fmt.Errorf("read %s for the image: %w", src, err)
		}
		if !path.IsAbs(dst) {
			return nil, fmt.Errorf("image path %q is not absolute", dst)
		}
		if err := addDir(path.Dir(dst), 0o755); err != nil {
			return nil, err
		}
		if err := w.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: dst[1:], Mode: 0o755, Size: int64(len(data)), ModTime: epoch}); err != nil {
			return nil, err
		}
		if _, err := w.Write(data); err != nil {
			return nil, err
		}
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// nonRootUser is the user of the stack's images, as in distroless images.
const nonRootUser = "65532"

// stackImages builds the images the node itself needs: the pod sandbox (pause), CoreDNS and
// the probe, and returns their archives.
func (s *Stack) stackImages(ctx context.Context) ([]string, error) {
	dir := s.statePath("images")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	for _, pkg := range []string{"pause", "probe"} {
		if err := BuildBinary(ctx, "./internal/localstack/cmd/"+pkg, filepath.Join(dir, pkg)); err != nil {
			return nil, err
		}
	}
	images := map[string]Image{
		"pause.tar":   {Ref: sandboxImage, Files: map[string]string{"/pause": filepath.Join(dir, "pause")}, Entrypoint: []string{"/pause"}, User: nonRootUser},
		"coredns.tar": {Ref: CoreDNSImage, Files: map[string]string{"/coredns": s.nodeBinary("coredns")}, Entrypoint: []string{"/coredns"}},
		"probe.tar":   {Ref: ProbeImage, Files: map[string]string{"/probe": filepath.Join(dir, "probe")}, Entrypoint: []string{"/probe"}, User: nonRootUser},
	}
	var archives []string
	for file, img := range images {
		archive := filepath.Join(dir, file)
		if err := WriteImage(img, archive); err != nil {
			return nil, err
		}
		archives = append(archives, archive)
	}
	return archives, nil
}
