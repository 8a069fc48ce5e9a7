package localstack

import (
	"context"
	"os"
	"strings"
)

// awsemuURLPrefix starts the line on which the emulator announces its endpoint.
const awsemuURLPrefix = "AWSEMU_URL="

// AWSEmulator is the AWS KMS and S3 emulator of test/awsemu, running as a child of a Stack.
type AWSEmulator struct {
	*Process
	url string
}

// StartAWSEmulator runs the emulator binary, built from test/awsemu/cmd/awsemu, on a free
// loopback port and waits until it announces its endpoint. args are added to its command
// line. Its log is <Dir>/awsemu.log.
func (s *Stack) StartAWSEmulator(ctx context.Context, binary string, args ...string) (*AWSEmulator, error) {
	p, err := s.StartProcess(ProcessOptions{Name: "awsemu", Path: binary, Args: args})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	line, err := p.WaitForLine(ctx, awsemuURLPrefix)
	if err != nil {
		s.abandon(p)
		return nil, err
	}
	s.logf("AWS emulator is serving at %s", strings.TrimPrefix(line, awsemuURLPrefix))
	return &AWSEmulator{Process: p, url: strings.TrimPrefix(line, awsemuURLPrefix)}, nil
}

// URL is the endpoint of every emulated service. S3 clients need path-style addressing.
func (e *AWSEmulator) URL() string {
	return e.url
}

// ClientEnv is the environment under which the AWS SDK's default credential chain uses
// credentials the emulator accepts, and never the user's AWS configuration or the
// instance metadata service.
func (e *AWSEmulator) ClientEnv() []string {
	return []string{
		"AWS_ACCESS_KEY_ID=AKIALOCALSTACK000000",
		"AWS_SECRET_ACCESS_KEY=localstack-emulated-not-a-secret",
		"AWS_SESSION_TOKEN=",
		"AWS_PROFILE=",
		"AWS_CONFIG_FILE=" + os.DevNull,
		"AWS_SHARED_CREDENTIALS_FILE=" + os.DevNull,
		"AWS_EC2_METADATA_DISABLED=true",
	}
}
