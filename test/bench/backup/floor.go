package main

import (
	"archive/tar"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	tmtypes "github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager/types"

	"github.com/workspace-operator/workspace-operator/internal/backup"
)

// floorMain is the floor variant, run as a child of the benchmark: a plain
// tar of the source streamed through the SDK's multipart uploader with the
// agent's client configuration, part size, concurrency and checksum, and
// nothing else (no compression, no encryption, no SSE, no manifest).
func floorMain(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("floor", flag.ContinueOnError)
	bucket := fs.String("bucket", "", "Bucket to upload to.")
	source := fs.String("source", "", "Directory to archive.")
	partSize := fs.Int64("part-size", backup.DefaultPartSize, "Part size in bytes.")
	concurrency := fs.Int("concurrency", backup.DefaultUploadConcurrency, "Parts in flight.")
	if err := fs.Parse(args); err != nil {
		return err
	}
	// The agent's own client factory, so that retries, checksums and
	// endpoint resolution (AWS_ENDPOINT_URL, from s3Env) are the agent's.
	_, client, err := backup.AWSClients(false)(ctx, regions[0])
	if err != nil {
		return err
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(writeTar(pw, *source)) }()
	tm := transfermanager.New(client, func(o *transfermanager.Options) {
		o.PartSizeBytes = *partSize
		o.MultipartUploadThreshold = *partSize
		o.Concurrency = *concurrency
		o.ChecksumAlgorithm = tmtypes.ChecksumAlgorithmCrc32c
	})
	_, err = tm.UploadObject(ctx, &transfermanager.UploadObjectInput{
		Bucket:      aws.String(*bucket),
		Key:         aws.String("floor.tar"),
		Body:        pr,
		ContentType: aws.String("application/x-tar"),
	})
	if err != nil {
		// Unblock the tar writer if the upload gave up first.
		pr.CloseWithError(err)
		return fmt.Errorf("upload: %w", err)
	}
	return nil
}

// writeTar writes dir as a tar stream of its directories and regular
// files, named relative to dir.
func writeTar(w io.Writer, dir string) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		hdr, err := tar.FileInfoHeader(info, "")
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		if d.IsDir() {
			hdr.Name += "/"
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		return copyFile(tw, path)
	})
	return errors.Join(err, tw.Close())
}

func copyFile(w io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close() // read-only
	_, err = io.Copy(w, f)
	return err
}
