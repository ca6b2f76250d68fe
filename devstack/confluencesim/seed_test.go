package confluencesim_test

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"spacesync.io/devstack/confluencesim"
)

// TestDefaultSeed_AdminRecipe applies the space-admin recipe cloud-app uses
// (v2 space permissions plus v1 memberof, over the simulator's REST API)
// and checks the default seed's promises: Ada administers every space, Sam
// exactly ENG and DOCS, Pat and Nia none; Pat reads every non-personal
// space, Nia none.
func TestDefaultSeed_AdminRecipe(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	seed := h.sim.Seed()
	type perm struct{ principalType, principalID, op string }
	perms := map[string][]perm{} // space key → permissions
	var allKeys, nonPersonal []string
	for _, sp := range seed.Spaces {
		allKeys = append(allKeys, sp.Key)
		if sp.Type != "personal" {
			nonPersonal = append(nonPersonal, sp.Key)
		}
		_, body := h.get(t, "/wiki/api/v2/spaces/"+sp.ID+"/permissions?limit=250")
		var p struct{ Results []permItem }
		mustJSON(t, body, &p)
		for _, it := range p.Results {
			perms[sp.Key] = append(perms[sp.Key], perm{it.Principal.Type, it.Principal.ID, it.Operation.Key + "/" + it.Operation.TargetType})
		}
	}
	can := func(accountID, op string) []string {
		_, body := h.get(t, "/wiki/rest/api/user/memberof?accountId="+strings.ReplaceAll(accountID, ":", "%3A"))
		var m struct{ Results []struct{ ID string } }
		mustJSON(t, body, &m)
		groups := map[string]bool{}
		for _, g := range m.Results {
			groups[g.ID] = true
		}
		var out []string
		for _, key := range allKeys {
			for _, p := range perms[key] {
				if p.op == op && (p.principalType == "user" && p.principalID == accountID || p.principalType == "group" && groups[p.principalID]) {
					out = append(out, key)
					break
				}
			}
		}
		return out
	}
	users := map[string]string{}
	for _, u := range seed.Users {
		users[u.DisplayName] = u.AccountID
	}
	tests := []struct {
		user, op string
		want     []string
	}{
		{"Ada Admin", "administer/space", allKeys},
		{"Sam Space-Admin", "administer/space", []string{"ENG", "DOCS"}},
		{"Pat Plain", "administer/space", nil},
		{"Nia Newcomer", "administer/space", nil},
		{"Pat Plain", "read/space", nonPersonal},
		{"Nia Newcomer", "read/space", nil},
	}
	for _, tt := range tests {
		if got := can(users[tt.user], tt.op); !slices.Equal(got, tt.want) {
			t.Errorf("%s %s: %v, want %v", tt.user, tt.op, got, tt.want)
		}
	}
	if !seed.Users[0].SiteAdmin || seed.Users[1].SiteAdmin || seed.Users[2].SiteAdmin {
		t.Error("only Ada should be a site admin")
	}
}

func TestGenerateSeed(t *testing.T) {
	for _, n := range []int{-1, 0, 3, 9, 10, 5000} {
		s := confluencesim.GenerateSeed(n)
		if want := max(n, 0); len(s.Spaces) != want {
			t.Errorf("GenerateSeed(%d) has %d spaces", n, len(s.Spaces))
		}
		if err := s.Validate(); err != nil {
			t.Errorf("GenerateSeed(%d): %v", n, err)
		}
	}
	a, b := confluencesim.GenerateSeed(300), confluencesim.GenerateSeed(300)
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Error("GenerateSeed is not deterministic")
	}
	types := map[string]int{}
	statuses := map[string]int{}
	for _, sp := range confluencesim.GenerateSeed(5000).Spaces {
		types[sp.Type]++
		statuses[sp.Status]++
	}
	if types["collaboration"] < 100 || statuses["archived"] < 50 {
		t.Errorf("generated spaces lack variety: %v %v", types, statuses)
	}
}

func TestParseSeed(t *testing.T) {
	good := `{"users":[{"accountId":"u1","displayName":"U"}],"groups":[{"id":"g1","name":"G","members":["u1"]}],
		"spaces":[{"id":"1","key":"A","name":"A","type":"global","status":"current",
		"permissions":[{"principal":{"type":"group","id":"g1"},"operations":["read/space"]}]}]}`
	if _, err := confluencesim.ParseSeed([]byte(good)); err != nil {
		t.Fatalf("good seed: %v", err)
	}
	for name, edit := range map[string][2]string{
		"unknown member":    {`"members":["u1"]`, `"members":["u2"]`},
		"unknown group":     {`"id":"g1"}`, `"id":"g2"}`},
		"bad operation":     {`"read/space"`, `"read"`},
		"bad type":          {`"type":"global"`, `"type":"blog"`},
		"bad id":            {`"id":"1"`, `"id":"one"`},
		"principal role":    {`"type":"group","id":"g1"}`, `"type":"role","id":"g1"}`},
		"unknown field":     {`"displayName":"U"`, `"displayName":"U","admin":true`},
		"reserved key char": {`"key":"A"`, `"key":"A,B"`},
	} {
		bad := strings.Replace(good, edit[0], edit[1], 1)
		if bad == good {
			t.Fatalf("%s: edit did not apply", name)
		}
		if _, err := confluencesim.ParseSeed([]byte(bad)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	d := confluencesim.DefaultSeed()
	if got := slices.Sorted(maps.Keys(map[string]bool{d.Groups[0].Name: true, d.Groups[1].Name: true, d.Groups[2].Name: true})); !slices.Equal(got, []string{"confluence-admins", "confluence-users", "eng-team"}) {
		t.Errorf("default groups %v", got)
	}
}

func TestNew_CopiesSeed(t *testing.T) {
	seed := confluencesim.GenerateSeed(12)
	sim, err := confluencesim.New(confluencesim.Config{PublicURL: "http://localhost:8080", AppDescriptorURL: "http://127.0.0.1:8081/d", Seed: seed, RSAKey: testKey()})
	if err != nil {
		t.Fatal(err)
	}
	seed.Spaces[0].Key = "CHANGED"
	seed.Spaces[0].Permissions[0].Operations[0] = "changed/space"
	got := sim.Seed()
	if got.Spaces[0].Key != "ENG" || got.Spaces[0].Permissions[0].Operations[0] != "read/space" {
		t.Errorf("the simulator's seed follows the caller's edits: %+v", got.Spaces[0])
	}
	got.Spaces[1].Key = "ALSO"
	if sim.Seed().Spaces[1].Key != "DOCS" {
		t.Error("Seed() returns the simulator's own copy")
	}
}
