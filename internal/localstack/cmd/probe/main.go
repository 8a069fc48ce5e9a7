// Command probe is the local stack's test workload: a TCP server, and a client whose exit
// status says whether the network let it through. Tests run it as pods to prove what the
// firewall allows with real connections.
//
//	probe serve [--listen :8080]                        answers "ok" to every connection
//	probe dial [--after 2s] [--timeout 5s] host:port    exits 0 if the server answered
//	probe resolve [--timeout 5s] name                   exits 0 if the name resolved
//	probe write --file path --content text              writes the file, then serves as serve does,
//	                                                    keeping its volume in use
//	probe put --file path --content text                writes the file and exits (a backup hook)
//	probe read path...                                  prints each file's owner, group, mode and
//	                                                    content, one line each (restores are
//	                                                    compared with it)
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"time"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "probe:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return errors.New("usage: probe serve|dial|resolve|write|read [flags] [argument]")
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	listen := fs.String("listen", ":8080", "address to serve on")
	after := fs.Duration("after", 0, "wait this long first, so that the NetworkPolicy engine has seen this pod")
	timeout := fs.Duration("timeout", 5*time.Second, "give up after this long")
	file := fs.String("file", "", "file to write")
	content := fs.String("content", "", "what to write into the file")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	time.Sleep(*after)
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	switch args[0] {
	case "serve":
		return serve(*listen)
	case "write":
		if *file == "" {
			return errors.New("usage: probe write --file path --content text")
		}
		if err := os.WriteFile(*file, []byte(*content), 0o640); err != nil {
			return err
		}
		fmt.Println("wrote", *file)
		return serve(*listen)
	case "dial":
		if fs.NArg() != 1 {
			return errors.New("usage: probe dial host:port")
		}
		return dial(ctx, fs.Arg(0))
	case "put":
		if *file == "" {
			return errors.New("usage: probe put --file path --content text")
		}
		return os.WriteFile(*file, []byte(*content), 0o640)
	case "read":
		if fs.NArg() == 0 {
			return errors.New("usage: probe read PATH [PATH ...]")
		}
		for _, path := range fs.Args() {
			line, err := describeFile(path)
			if err != nil {
				return err
			}
			fmt.Println(line)
		}
		return nil
	case "resolve":
		if fs.NArg() != 1 {
			return errors.New("usage: probe resolve name")
		}
		addrs, err := net.DefaultResolver.LookupHost(ctx, fs.Arg(0))
		if err != nil {
			return err
		}
		fmt.Println(strings.Join(addrs, " "))
		return nil
	}
	return fmt.Errorf("unknown command %q", args[0])
}

func serve(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Println("serving on", l.Addr())
	for {
		conn, err := l.Accept()
		if err != nil {
			return err
		}
		_, _ = conn.Write([]byte("ok\n"))
		_ = conn.Close()
	}
}

func dial(ctx context.Context, addr string) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetReadDeadline(deadline)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return fmt.Errorf("connected to %s but read no answer: %w", addr, err)
	}
	fmt.Printf("%s answered %q\n", addr, strings.TrimSpace(line))
	return nil
}

// describeFile is "uid gid mode content" of a regular file.
func describeFile(path string) (string, error) {
	info, err := os.Lstat(path)
	if err != nil {
		return "", err
	}
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok || !info.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", path)
	}
	content, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%d %d %s %q", st.Uid, st.Gid, info.Mode(), content), nil
}
