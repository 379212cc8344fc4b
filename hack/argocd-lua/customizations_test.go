// Tests the Argo CD resource customizations in deploy/argocd/resource_customizations the
// way Argo CD's own resource_customizations tests do: every health.lua is run on each
// input of its health_test.yaml and must give the expected status and message; every
// action is discovered and run on the inputs of actions/action_test.yaml and must give
// the expected object.
//
// The scripts run in gopher-lua, the interpreter Argo CD embeds, with the libraries Argo
// CD opens for them: package, base and table, and an os library that only tells the time.
// So a script that uses anything else fails here as it would in Argo CD. The clock is
// fixed at fixedTime, which action outputs that depend on the time are written for.
package argocdlua

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"testing"
	"time"

	lua "github.com/yuin/gopher-lua"
	"gopkg.in/yaml.v3"
)

const root = "../../deploy/argocd/resource_customizations"

// fixedTime is os.time() in the tests: 2026-12-01T00:00:00Z.
const fixedTime = 1764547200

type healthTests struct {
	Tests []struct {
		HealthStatus struct {
			Status  string `yaml:"status"`
			Message string `yaml:"message"`
		} `yaml:"healthStatus"`
		InputPath string `yaml:"inputPath"`
	} `yaml:"tests"`
}

type discoveredAction struct {
	Name      string `yaml:"name"`
	Disabled  bool   `yaml:"disabled"`
	IconClass string `yaml:"iconClass"`
}

type actionTests struct {
	DiscoveryTests []struct {
		InputPath string             `yaml:"inputPath"`
		Result    []discoveredAction `yaml:"result"`
	} `yaml:"discoveryTests"`
	ActionTests []struct {
		Action             string `yaml:"action"`
		InputPath          string `yaml:"inputPath"`
		ExpectedOutputPath string `yaml:"expectedOutputPath"`
	} `yaml:"actionTests"`
}

// customizations are the folders holding a health.lua or an actions/discovery.lua.
func customizations(t *testing.T) []string {
	t.Helper()
	found := map[string]bool{}
	err := filepath.WalkDir(root, func(path string, entry os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch {
		case entry.Name() == "health.lua":
			found[filepath.Dir(path)] = true
		case entry.Name() == "discovery.lua" && filepath.Base(filepath.Dir(path)) == "actions":
			found[filepath.Dir(filepath.Dir(path))] = true
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walking %s: %v", root, err)
	}
	if len(found) == 0 {
		t.Fatalf("no resource customization under %s", root)
	}
	dirs := make([]string, 0, len(found))
	for dir := range found {
		dirs = append(dirs, dir)
	}
	sort.Strings(dirs)
	return dirs
}

func TestHealth(t *testing.T) {
	for _, dir := range customizations(t) {
		script := filepath.Join(dir, "health.lua")
		var suite healthTests
		readYAML(t, filepath.Join(dir, "health_test.yaml"), &suite)
		if len(suite.Tests) == 0 {
			t.Fatalf("%s/health_test.yaml lists no test", dir)
		}
		for _, tc := range suite.Tests {
			t.Run(tc.InputPath, func(t *testing.T) {
				obj := readObject(t, filepath.Join(dir, tc.InputPath))
				result := run(t, script, obj)
				table, ok := result.(*lua.LTable)
				if !ok {
					t.Fatalf("health.lua returned %s, not a table", result.Type())
				}
				status := lua.LVAsString(table.RawGetString("status"))
				message := lua.LVAsString(table.RawGetString("message"))
				if status != tc.HealthStatus.Status || message != tc.HealthStatus.Message {
					t.Errorf("health of %s:\n got  %s %q\n want %s %q", tc.InputPath,
						status, message, tc.HealthStatus.Status, tc.HealthStatus.Message)
				}
			})
		}
	}
}

func TestActions(t *testing.T) {
	for _, dir := range customizations(t) {
		actions := filepath.Join(dir, "actions")
		var suite actionTests
		readYAML(t, filepath.Join(actions, "action_test.yaml"), &suite)
		if len(suite.DiscoveryTests) == 0 || len(suite.ActionTests) == 0 {
			t.Fatalf("%s/action_test.yaml needs discovery and action tests", actions)
		}
		for _, tc := range suite.DiscoveryTests {
			t.Run("discovery/"+tc.InputPath, func(t *testing.T) {
				obj := readObject(t, filepath.Join(dir, tc.InputPath))
				got := discovered(t, run(t, filepath.Join(actions, "discovery.lua"), obj))
				want := append([]discoveredAction(nil), tc.Result...)
				sort.Slice(want, func(i, j int) bool { return want[i].Name < want[j].Name })
				if !reflect.DeepEqual(got, want) {
					t.Errorf("actions of %s:\n got  %+v\n want %+v", tc.InputPath, got, want)
				}
			})
		}
		for _, tc := range suite.ActionTests {
			t.Run(tc.Action+"/"+tc.InputPath, func(t *testing.T) {
				input := readObject(t, filepath.Join(dir, tc.InputPath))
				script := filepath.Join(actions, tc.Action, "action.lua")
				result := run(t, script, input)
				if _, ok := result.(*lua.LTable); !ok {
					t.Fatalf("%s returned %s, not an object", script, result.Type())
				}
				got := normalise(t, fromLua(result, input))
				want := normalise(t, readObject(t, filepath.Join(dir, tc.ExpectedOutputPath)))
				if !reflect.DeepEqual(got, want) {
					t.Errorf("%s on %s:\n got  %s\n want %s (%s)", tc.Action, tc.InputPath,
						asJSON(got), asJSON(want), tc.ExpectedOutputPath)
				}
			})
		}
	}
}

// run executes script with the global obj set to obj, in a state opened as Argo CD opens
// it, and returns what the script returned.
func run(t *testing.T, script string, obj any) lua.LValue {
	t.Helper()
	state := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer state.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
	} {
		state.Push(state.NewFunction(lib.open))
		state.Push(lua.LString(lib.name))
		state.Call(1, 0)
	}
	state.SetGlobal(lua.OsLibName, clockOnlyOs(state))
	state.SetGlobal("obj", toLua(state, obj))
	if err := state.DoFile(script); err != nil {
		t.Fatalf("%s: %v", script, err)
	}
	return state.Get(-1)
}

// clockOnlyOs is the os library Argo CD gives scripts (time, date, clock), with
// os.time() and os.date() reading the fixed clock.
func clockOnlyOs(state *lua.LState) *lua.LTable {
	state.Push(state.NewFunction(lua.OpenOs))
	state.Push(lua.LString(lua.OsLibName))
	state.Call(1, 1)
	full := state.Get(-1).(*lua.LTable)
	state.Pop(1)
	safe := state.NewTable()
	safe.RawSetString("clock", full.RawGetString("clock"))
	safe.RawSetString("time", state.NewFunction(func(l *lua.LState) int {
		if l.GetTop() == 0 {
			l.Push(lua.LNumber(fixedTime))
			return 1
		}
		return delegate(l, full.RawGetString("time"))
	}))
	safe.RawSetString("date", state.NewFunction(func(l *lua.LState) int {
		if l.GetTop() == 0 {
			l.Push(lua.LString("%c"))
		}
		if l.GetTop() == 1 {
			l.Push(lua.LNumber(fixedTime))
		}
		return delegate(l, full.RawGetString("date"))
	}))
	return safe
}

func delegate(l *lua.LState, fn lua.LValue) int {
	args := make([]lua.LValue, l.GetTop())
	for i := range args {
		args[i] = l.Get(i + 1)
	}
	if err := l.CallByParam(lua.P{Fn: fn, NRet: 1, Protect: true}, args...); err != nil {
		l.RaiseError("%v", err)
	}
	return 1
}

func discovered(t *testing.T, value lua.LValue) []discoveredAction {
	t.Helper()
	table, ok := value.(*lua.LTable)
	if !ok {
		t.Fatalf("discovery.lua returned %s, not a table", value.Type())
	}
	var found []discoveredAction
	table.ForEach(func(key, entry lua.LValue) {
		action := discoveredAction{Name: lua.LVAsString(key)}
		if fields, ok := entry.(*lua.LTable); ok {
			action.Disabled = lua.LVAsBool(fields.RawGetString("disabled"))
			action.IconClass = lua.LVAsString(fields.RawGetString("iconClass"))
		}
		found = append(found, action)
	})
	sort.Slice(found, func(i, j int) bool { return found[i].Name < found[j].Name })
	return found
}

func toLua(state *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case nil:
		return lua.LNil
	case bool:
		return lua.LBool(v)
	case string:
		return lua.LString(v)
	case int:
		return lua.LNumber(v)
	case float64:
		return lua.LNumber(v)
	case time.Time:
		return lua.LString(v.UTC().Format(time.RFC3339))
	case []any:
		table := state.NewTable()
		for _, item := range v {
			table.Append(toLua(state, item))
		}
		return table
	case map[string]any:
		table := state.NewTable()
		for key, item := range v {
			table.RawSetString(key, toLua(state, item))
		}
		return table
	default:
		panic(fmt.Sprintf("no Lua value for %T", value))
	}
}

// fromLua turns a script's result back into JSON-like data. Lua has one table type for
// lists and maps: an empty table takes the kind its counterpart in the input had, as
// Argo CD does when it cleans up an action's result.
func fromLua(value lua.LValue, original any) any {
	switch v := value.(type) {
	case lua.LBool:
		return bool(v)
	case lua.LString:
		return string(v)
	case lua.LNumber:
		return float64(v)
	case *lua.LTable:
		if n := v.MaxN(); n > 0 && n == countKeys(v) {
			previous, _ := original.([]any)
			list := make([]any, 0, n)
			for i := 1; i <= n; i++ {
				var before any
				if i <= len(previous) {
					before = previous[i-1]
				}
				list = append(list, fromLua(v.RawGetInt(i), before))
			}
			return list
		}
		if countKeys(v) == 0 {
			if _, wasList := original.([]any); wasList {
				return []any{}
			}
		}
		previous, _ := original.(map[string]any)
		object := map[string]any{}
		v.ForEach(func(key, item lua.LValue) {
			name := lua.LVAsString(key)
			object[name] = fromLua(item, previous[name])
		})
		return object
	default:
		return nil
	}
}

func countKeys(table *lua.LTable) int {
	n := 0
	table.ForEach(func(lua.LValue, lua.LValue) { n++ })
	return n
}

// normalise compares numbers as JSON does: every one a float64.
func normalise(t *testing.T, value any) any {
	t.Helper()
	var out any
	if err := json.Unmarshal([]byte(asJSON(value)), &out); err != nil {
		t.Fatalf("normalising: %v", err)
	}
	return out
}

func asJSON(value any) string {
	encoded, err := json.Marshal(jsonable(value))
	if err != nil {
		panic(err)
	}
	return string(encoded)
}

func jsonable(value any) any {
	switch v := value.(type) {
	case time.Time:
		return v.UTC().Format(time.RFC3339)
	case []any:
		out := make([]any, len(v))
		for i, item := range v {
			out[i] = jsonable(item)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(v))
		for key, item := range v {
			out[key] = jsonable(item)
		}
		return out
	default:
		return v
	}
}

func readObject(t *testing.T, path string) map[string]any {
	t.Helper()
	var obj map[string]any
	readYAML(t, path, &obj)
	if obj["kind"] == nil {
		t.Fatalf("%s is not a Kubernetes object", path)
	}
	return obj
}

func readYAML(t *testing.T, path string, into any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, into); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
