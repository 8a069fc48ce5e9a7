package backup

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/klauspost/compress/zstd"
)

// defaultSummaryFile is where Kubernetes picks up a container's
// termination message.
const defaultSummaryFile = "/dev/termination-log"

const usage = `usage:
  workspace-operator backup  --workspace NAME --location REGION=BUCKET,KEY [--location ...]
                             [--source DIR ...] [--include-bucket BUCKET [--include-prefix PREFIX]] [flags]
  workspace-operator restore --workspace NAME --location REGION=BUCKET[,KEY] [--location ...]
                             (--target DIR [--backup ID|latest] [--source NAME ...] | --list) [flags]

Run a subcommand with -h for its flags. AWS endpoints come from the SDK's own
configuration: AWS_ENDPOINT_URL_KMS, AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL_STS,
AWS_ENDPOINT_URL, or AWS's when none is set.
`

// Main runs the agent's command line, as the operator's CronJobs invoke
// it: args[0] is the subcommand, backup or restore. Progress is logged to
// stderr; the backup summary and restore results go to stdout.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := &cli{stdout: stdout, stderr: stderr, clients: AWSClients}
	return c.run(ctx, args)
}

// cli is the command line with its dependencies, which tests replace.
type cli struct {
	stdout, stderr io.Writer
	clients        func(s3PathStyle bool) Clients
}

func (c *cli) run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(c.stderr, usage)
		return errors.New("no subcommand")
	}
	switch args[0] {
	case "backup":
		return c.backup(ctx, args[1:])
	case "restore":
		return c.restore(ctx, args[1:])
	case "-h", "-help", "--help", "help":
		fmt.Fprint(c.stderr, usage)
		return flag.ErrHelp
	default:
		fmt.Fprint(c.stderr, usage)
		return fmt.Errorf("unknown subcommand %q", args[0])
	}
}

// commonFlags are the flags of both subcommands.
type commonFlags struct {
	s3PathStyle bool
	logFormat   string
	locations   locationFlag
	workspace   string
}

func (c *cli) flagSet(name string, common *commonFlags) *flag.FlagSet {
	fs := flag.NewFlagSet("workspace-operator "+name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.StringVar(&common.workspace, "workspace", "", "Workspace name (required).")
	fs.BoolVar(&common.s3PathStyle, "aws-s3-path-style", false, "Address S3 buckets in the URL path rather than the host name, for S3-compatible servers without wildcard DNS. "+
		"Endpoints come from the AWS SDK's configuration: AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL_KMS, AWS_ENDPOINT_URL.")
	fs.StringVar(&common.logFormat, "log-format", "text", "Log format on stderr: text or json.")
	return fs
}

// agent builds the agent the flags describe.
func (c *cli) agent(common *commonFlags) (*Agent, error) {
	opts := &slog.HandlerOptions{Level: slog.LevelInfo}
	var handler slog.Handler
	switch common.logFormat {
	case "text":
		handler = slog.NewTextHandler(c.stderr, opts)
	case "json":
		handler = slog.NewJSONHandler(c.stderr, opts)
	default:
		return nil, fmt.Errorf("--log-format %q: want text or json", common.logFormat)
	}
	logger := slog.New(handler)
	// The SDK's transfer manager reports some failures through the log
	// package; as the process's default they become records like ours.
	slog.SetDefault(logger)
	return &Agent{Clients: c.clients(common.s3PathStyle), Log: logger}, nil
}

func (c *cli) backup(ctx context.Context, args []string) error {
	var (
		common  commonFlags
		opts    Options
		sources stringsFlag
	)
	fs := c.flagSet("backup", &common)
	fs.Var(&common.locations, "location", "Backup location `REGION=BUCKET,KEY`, KEY being the workspace's KMS key there (alias, ARN or ID). Repeat for every location; the first is the primary region. Required.")
	fs.StringVar(&opts.BackupID, "backup-id", "", "Backup ID; default: the start time, UTC, as "+BackupIDLayout+".")
	fs.Var(&sources, "source", "Directory `DIR` to back up (a mounted volume), stored under its base name. Repeatable.")
	fs.StringVar(&opts.IncludeBucket, "include-bucket", "", "Workspace file bucket in the primary region whose objects are stored under "+BucketSourceName+"/.")
	fs.StringVar(&opts.IncludePrefix, "include-prefix", "", "Only include the bucket's objects under this key prefix (which is stripped).")
	fs.IntVar(&opts.RetentionDays, "retention-days", MaxRetentionDays, fmt.Sprintf("Days complete backups are kept, 1 to %d. The newest backup of a location is always kept.", MaxRetentionDays))
	summaryFile := fs.String("summary-file", defaultSummaryFile, "File the JSON summary is written to (at most 4 KiB); the default is skipped when it does not exist, empty disables.")
	partSize := fs.Int("part-size-mib", 0, "Multipart upload part size in MiB (5 to 5120); 0 chooses one from the size of the sources, at least 8, so that the archive fits S3's 10,000 parts.")
	concurrency := fs.Int("upload-concurrency", DefaultUploadConcurrency, "Parts uploaded in parallel per location (1 to 64).")
	compression := fs.String("compression", "default", "zstd level: fastest or default.")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *partSize != 0 && (*partSize < 5 || *partSize > 5120) {
		return fmt.Errorf("--part-size-mib %d: must be 0 (automatic) or 5 to 5120", *partSize)
	}
	if *concurrency < 1 || *concurrency > 64 {
		return fmt.Errorf("--upload-concurrency %d: must be 1 to 64", *concurrency)
	}
	level, ok := map[string]zstd.EncoderLevel{"fastest": zstd.SpeedFastest, "default": zstd.SpeedDefault}[*compression]
	if !ok {
		return fmt.Errorf("--compression %q: want fastest or default", *compression)
	}
	agent, err := c.agent(&common)
	if err != nil {
		return err
	}
	agent.PartSize, agent.UploadConcurrency, agent.Compression = int64(*partSize)<<20, *concurrency, level
	opts.Workspace, opts.Locations = common.workspace, common.locations
	for _, p := range sources {
		opts.Sources = append(opts.Sources, Source{Name: filepath.Base(filepath.Clean(p)), Path: p})
	}

	sum, err := agent.Backup(ctx, opts)
	out := sum.Marshal()
	if _, werr := c.stdout.Write(out); werr != nil {
		err = errors.Join(err, fmt.Errorf("write summary: %w", werr))
	}
	if path := *summaryFile; path != "" {
		if _, statErr := os.Stat(path); path != defaultSummaryFile || statErr == nil {
			err = errors.Join(err, writeSummaryFile(path, sum))
		}
	}
	return err
}

func (c *cli) restore(ctx context.Context, args []string) error {
	var common commonFlags
	fs := c.flagSet("restore", &common)
	fs.Var(&common.locations, "location", "Location `REGION=BUCKET[,KEY]` to restore from; with KEY, data keys under any other key are refused. Repeat to fall back on further locations, tried in order. Required.")
	backupID := fs.String("backup", Latest, "Backup ID to restore; latest for each location's newest complete backup holding every --source; "+
		"or a data mover run's ID R, whose volumes are backed up one per backup as R-<claim>: the backup R if there is one, else the one of R-* that holds the --source.")
	target := fs.String("target", "", "Directory to restore into; must not exist or be empty (lost+found aside). Each source comes back as a subdirectory.")
	var sources stringsFlag
	fs.Var(&sources, "source", "Restore only the source `NAME` (a backed-up directory's base name, with the data mover the claim, or "+BucketSourceName+"), from a backup that holds it. "+
		"Repeatable; default: every source. With --list, list only the backups that hold it.")
	list := fs.Bool("list", false, "List every location's complete backups, and incomplete ones with their problem, instead of restoring.")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	agent, err := c.agent(&common)
	if err != nil {
		return err
	}
	if *list {
		listings, err := agent.List(ctx, common.workspace, common.locations)
		if err != nil {
			return err
		}
		return printListings(c.stdout, listings, sources)
	}
	res, err := agent.Restore(ctx, RestoreOptions{
		Workspace: common.workspace,
		BackupID:  *backupID,
		Locations: common.locations,
		Target:    *target,
		Sources:   sources,
	})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(c.stdout, "restored backup %s (created %s) from %s into %s: %d files, %d directories, %d symbolic links, %d bytes, %d extended attributes (%d refused by the target)\n",
		res.BackupID, res.Created.Format(time.RFC3339), res.Location, *target, res.Stats.Files, res.Stats.Dirs, res.Stats.Symlinks, res.Stats.Bytes,
		res.Stats.Xattrs, res.Stats.SkippedXattrs)
	return err
}

// printListings prints one line per complete backup that holds every
// source named (with the data mover, one per volume and run: naming the
// volume keeps the list to that volume's backups), and fails if a location
// could not be listed.
func printListings(w io.Writer, listings []Listing, sources []string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LOCATION\tBACKUP\tCREATED\tARCHIVE BYTES\tSOURCES")
	var errs []error
	for _, l := range listings {
		if l.Err != nil {
			fmt.Fprintf(tw, "%s\tunavailable: %v\t\t\t\n", l.Location, l.Err)
			errs = append(errs, fmt.Errorf("location %s: %w", l.Location, l.Err))
			continue
		}
		listed := 0
		for _, m := range l.Backups {
			if !holds(m, sources) {
				continue
			}
			listed++
			var names []string
			for _, s := range m.Sources {
				names = append(names, fmt.Sprintf("%s (%d files, %d bytes)", s.Name, s.Files, s.Bytes))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", l.Location, m.BackupID, m.Created.Format(time.RFC3339), m.ArchiveSize, strings.Join(names, ", "))
		}
		switch {
		case listed > 0:
		case len(sources) > 0:
			fmt.Fprintf(tw, "%s\tno complete backup holding %s\t\t\t\n", l.Location, strings.Join(sources, ", "))
		default:
			fmt.Fprintf(tw, "%s\tno complete backup\t\t\t\n", l.Location)
		}
		for _, b := range l.Incomplete {
			problem := "no manifest"
			if b.Problem != "" {
				problem = b.Problem
			}
			fmt.Fprintf(tw, "%s\t%s\tincomplete: %s\t\t\n", l.Location, b.BackupID, problem)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return errors.Join(errs...)
}

// locationFlag collects repeated --location flags.
type locationFlag []Location

func (f *locationFlag) String() string {
	parts := make([]string, len(*f))
	for i, l := range *f {
		parts[i] = l.String()
	}
	return strings.Join(parts, " ")
}

func (f *locationFlag) Set(s string) error {
	l, err := ParseLocation(s)
	if err != nil {
		return err
	}
	*f = append(*f, l)
	return nil
}

// stringsFlag collects a repeated string flag.
type stringsFlag []string

func (f *stringsFlag) String() string { return strings.Join(*f, " ") }

func (f *stringsFlag) Set(s string) error {
	*f = append(*f, s)
	return nil
}
