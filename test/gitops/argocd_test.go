package gitops

import (
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	lua "github.com/yuin/gopher-lua"
)

// argoScripts are the chart's Argo CD health checks, by the kind they are for. A
// WorkspacePurge kind gets its own script (argocd/health-workspacepurge.lua), its own
// states and expectations, and an entry here.
var argoScripts = map[string]string{
	"Workspace": "health-workspace.lua",
}

type argoExpectation struct {
	status  string
	message string // a substring of the message
}

var argoExpectations = map[string]argoExpectation{
	stateNew:                 {"Progressing", "Waiting for workspace-operator to reconcile the Workspace"},
	stateProvisioning:        {"Progressing", "CertificateReady: " + issuingMessage},
	stateFirstReconcileError: {"Progressing", "Waiting for workspace-operator to reconcile generation 1: NetworkIsolated: " + networkFailMessage},
	stateReady:               {"Healthy", readyMessage},
	stateBehind:              {"Progressing", "Waiting for workspace-operator to reconcile generation 4"},
	stateDegraded:            {"Progressing", "NetworkIsolated: " + networkFailMessage},
	stateStalled:             {"Degraded", "NamespaceReady: " + conflictMessage},
	stateStalledOldSpec:      {"Progressing", "Waiting for workspace-operator to reconcile generation 3"},
	stateNamespaceDeleted:    {"Missing", terminatingMessage},
	stateDeleting:            {"Progressing", "Workspace is being deleted"},
	stateSuspended:           {"Suspended", "Workspace is suspended"},
}

func argoDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "charts", "workspace-operator", "argocd")
}

// runHealthScript runs an Argo CD health check as Argo CD does: obj is the resource as a
// Lua table, only the base, table and package libraries are open, and the script returns a
// table with status and message.
func runHealthScript(t *testing.T, script string, obj map[string]any) (status, message string) {
	t.Helper()
	state := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer state.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{{lua.LoadLibName, lua.OpenPackage}, {lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable}} {
		state.Push(state.NewFunction(lib.open))
		state.Push(lua.LString(lib.name))
		state.Call(1, 0)
	}
	state.SetGlobal("obj", toLua(state, obj))
	if err := state.DoString(script); err != nil {
		t.Fatalf("health script: %v", err)
	}
	result, ok := state.Get(-1).(*lua.LTable)
	if !ok {
		t.Fatalf("health script returned %s, want a table", state.Get(-1).Type())
	}
	s, ok := result.RawGetString("status").(lua.LString)
	if !ok {
		t.Fatalf("health script returned no status")
	}
	m, _ := result.RawGetString("message").(lua.LString)
	return string(s), string(m)
}

// toLua converts decoded JSON to Lua values, as Argo CD does: objects and arrays become
// tables, arrays indexed from 1.
func toLua(state *lua.LState, v any) lua.LValue {
	switch v := v.(type) {
	case nil:
		return lua.LNil
	case bool:
		return lua.LBool(v)
	case string:
		return lua.LString(v)
	case int64:
		return lua.LNumber(v)
	case int:
		return lua.LNumber(v)
	case float64:
		return lua.LNumber(v)
	case map[string]any:
		table := state.NewTable()
		for key, value := range v {
			table.RawSetString(key, toLua(state, value))
		}
		return table
	case []any:
		table := state.NewTable()
		for _, value := range v {
			table.Append(toLua(state, value))
		}
		return table
	default:
		panic("toLua: unexpected JSON value")
	}
}

func TestArgoCDHealthWorkspace(t *testing.T) {
	script, err := os.ReadFile(filepath.Join(argoDir(), argoScripts["Workspace"]))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range workspaceStates() {
		t.Run(s.name, func(t *testing.T) {
			want, ok := argoExpectations[s.name]
			if !ok {
				t.Fatalf("no Argo CD expectation for state %q", s.name)
			}
			status, message := runHealthScript(t, string(script), toUnstructured(t, s.ws).Object)
			if status != want.status {
				t.Errorf("Argo CD health = %s (%q), want %s", status, message, want.status)
			}
			if !strings.Contains(message, want.message) {
				t.Errorf("Argo CD message = %q, want it to contain %q", message, want.message)
			}
		})
	}
}

// TestArgoCDHealthStatuses checks every script only returns statuses Argo CD knows.
func TestArgoCDHealthStatuses(t *testing.T) {
	known := map[string]bool{"Healthy": true, "Progressing": true, "Degraded": true, "Suspended": true, "Missing": true, "Unknown": true}
	assignment := regexp.MustCompile(`hs\.status\s*=\s*"([^"]*)"`)
	for kind, file := range argoScripts {
		script, err := os.ReadFile(filepath.Join(argoDir(), file))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range assignment.FindAllStringSubmatch(string(script), -1) {
			if !known[m[1]] {
				t.Errorf("%s (%s) returns status %q, which Argo CD does not know", file, kind, m[1])
			}
		}
	}
}

// TestArgoCDReadme checks the argocd-cm snippet in the chart's README carries each script
// exactly as it is in argocd/, so that copying it from the README installs the tested code.
func TestArgoCDReadme(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(argoDir(), "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for kind, file := range argoScripts {
		script, err := os.ReadFile(filepath.Join(argoDir(), file))
		if err != nil {
			t.Fatal(err)
		}
		key := "resource.customizations.health.tenancy.workspace-operator.io_" + kind + ": |"
		_, after, found := strings.Cut(string(readme), key+"\n")
		if !found {
			t.Errorf("README.md has no %q key in its argocd-cm snippet", key)
			continue
		}
		var lines []string
		for _, line := range strings.Split(after, "\n") {
			if line != "" && !strings.HasPrefix(line, "    ") {
				break
			}
			lines = append(lines, strings.TrimPrefix(line, "    "))
		}
		got := strings.TrimSpace(strings.Join(lines, "\n"))
		if got != strings.TrimSpace(string(script)) {
			t.Errorf("README.md's %s differs from argocd/%s: paste the script again, indented by four spaces", key, file)
		}
	}
}
