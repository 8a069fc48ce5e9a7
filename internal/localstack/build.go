package localstack

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/workspace-operator/workspace-operator/internal/testenv"
)

// BuildBinary builds the main package pkg of this repository, such as "." for the
// operator, into output, with the build tags given.
func BuildBinary(ctx context.Context, pkg, output string, tags ...string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-tags="+strings.Join(tags, ","), "-o", output, pkg)
	// Static, so that the binary also runs in an image with nothing else in it.
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	cmd.Dir = testenv.RepoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, out)
	}
	return nil
}
