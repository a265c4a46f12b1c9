package web_test

import (
	"context"
	"fmt"
	"image/color"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/personcluster/personcluster/stages/internal/browser"
	"github.com/personcluster/personcluster/stages/people"
	"github.com/personcluster/personcluster/stages/stage"
	"github.com/personcluster/personcluster/stages/stage/stagetest"
	"github.com/personcluster/personcluster/stages/web"
)

// seedGallery links one window of n well-apart generated people (4 faces each, crops in the
// images bucket, a thumbnail each) into the gallery and returns their ids. The vectors are
// random directions, so what is tested is the UI, not a face model.
func seedGallery(t *testing.T, env *stagetest.Env, n int) (*people.Gallery, []string) {
	t.Helper()
	ctx := context.Background()
	g, err := people.Open(ctx, env.JS)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := env.JS.ObjectStore(ctx, stage.ImagesBucket)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(16, 1))
	w := people.Window{ID: "gallery.final", Source: "gallery", Model: "test-32", Cut: 0.8, AtMillis: time.Now().UnixMilli()}
	for p := range n {
		base := make([]float32, 32)
		for i := range base {
			base[i] = float32(r.NormFloat64())
		}
		shade := color.RGBA{uint8(70 * p), 140, 200, 255}
		c := people.Cluster{Thumbnail: jpegOf(t, shade)}
		for f := range 4 {
			v := make([]float32, len(base))
			for i := range v {
				v[i] = base[i] + float32(r.NormFloat64()*0.05)
			}
			frame := int64(10*p + f)
			key := fmt.Sprintf("gallery/faces/%06d-0.jpg", frame)
			if _, err := obj.PutBytes(ctx, key, jpegOf(t, shade)); err != nil {
				t.Fatal(err)
			}
			c.Faces = append(c.Faces, people.Face{Vector: v, Frame: frame, PTSMillis: frame * 40, Image: key})
		}
		w.Clusters = append(w.Clusters, c)
	}
	links, err := g.Link(ctx, w)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, l := range links {
		if !l.New {
			t.Fatalf("links %+v: every cluster should be a new person", links)
		}
		ids = append(ids, l.Person)
	}
	return g, ids
}

// galleryPage is what the people page shows.
type galleryPage struct {
	People  []string `json:"people"` // data-person of each article, in order
	Names   []string `json:"names"`
	Message string   `json:"message"`
}

func readGallery(ctx context.Context) (galleryPage, error) {
	return chromedp.Run(ctx, chromedp.Evaluate[galleryPage](`(() => {
  const arts = [...document.querySelectorAll("article[data-person]")];
  return {people: arts.map(a => a.dataset.person), names: arts.map(a => a.querySelector("h2").textContent),
    message: document.getElementById("message").textContent};
})()`))
}

func waitGallery(t *testing.T, ctx context.Context, what string, ok func(galleryPage) bool) galleryPage {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var last galleryPage
	for time.Now().Before(deadline) {
		p, err := readGallery(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if last = p; ok(p) {
			return p
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the people page never showed %s; last %+v", what, last)
	return last
}

// TestPeopleGalleryInBrowser edits the gallery through its page in chromium, with the keyboard
// where a person would: an edit without the token changes nothing and says why; with it, a
// rename, a merge and a split change the gallery in the key-value bucket and the page shows
// the result. Every thumbnail and exemplar loads and has an alt text.
func TestPeopleGalleryInBrowser(t *testing.T) {
	ctx := browser.New(t)
	env := startNATS(t)
	g, ids := seedGallery(t, env, 3)
	_, hs, _, _ := startUI(t, env.Server.ClientURL(), web.Config{Token: "s3cret"})
	if err := chromedp.Do(browser.Within(t, ctx, 30*time.Second), chromedp.Navigate(hs.URL+"/people/")); err != nil {
		t.Fatal(err)
	}
	page := waitGallery(t, ctx, "three people", func(p galleryPage) bool { return len(p.People) == 3 })
	for i, id := range page.People {
		if !slices.Contains(ids, id) || page.Names[i] != "Person "+id {
			t.Errorf("article %d: %s %q; the gallery has %v", i, id, page.Names[i], ids)
		}
	}
	imgs, err := browser.ImagesLoaded(browser.Within(t, ctx, 30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if imgs.Total < 3+3*2 || len(imgs.Broken) > 0 {
		t.Errorf("%d images, broken: %v", imgs.Total, imgs.Broken)
	}
	noAlt, err := chromedp.Run(ctx, chromedp.Evaluate[int](`[...document.images].filter(i => !i.alt.trim()).length`))
	if err != nil || noAlt > 0 {
		t.Errorf("%d images without alt text (%v)", noAlt, err)
	}
	browser.Screenshot(t, ctx, "live-people.png", true)

	// Without the token: the page asks for it, the gallery stays as it was.
	a, b := page.People[0], page.People[1]
	run := func(js string) {
		t.Helper()
		if _, err := chromedp.Run(browser.Within(t, ctx, 10*time.Second), chromedp.Evaluate[any](js)); err != nil {
			t.Fatalf("%s: %v", js, err)
		}
	}
	run(fmt.Sprintf(`document.getElementById("rename-%s").value = "Mallory"; document.querySelector('article[data-person=%q] form[data-action=name] button').click()`, a, a))
	waitGallery(t, ctx, "the token request", func(p galleryPage) bool { return strings.Contains(p.Message, "token") })
	if p, _, err := g.Get(context.Background(), a); err != nil || p.Name != "" {
		t.Fatalf("after an edit without the token: %+v, %v", p, err)
	}

	// With the keyboard: type the token, tab to the first person's name field, type, Enter.
	run(fmt.Sprintf(`document.getElementById("token").focus(); document.getElementById("rename-%s").value = ""`, a))
	keys := func(k string) {
		t.Helper()
		if err := chromedp.Do(browser.Within(t, ctx, 10*time.Second), chromedp.KeyEvent(k)); err != nil {
			t.Fatal(err)
		}
	}
	keys("s3cret")
	for tabs := 0; ; tabs++ {
		active, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.activeElement.id`))
		if err != nil {
			t.Fatal(err)
		}
		if active == "rename-"+a {
			break
		}
		if tabs == 5 {
			t.Fatalf("%d tabs from the token field did not reach the name field (at %q)", tabs, active)
		}
		keys("\t")
	}
	keys("Alice\r")
	waitGallery(t, ctx, "Alice", func(p galleryPage) bool { return len(p.Names) == 3 && p.Names[0] == "Alice" })
	if p, _, err := g.Get(context.Background(), a); err != nil || p.Name != "Alice" {
		t.Fatalf("after the rename the gallery has %+v, %v", p, err)
	}

	// Merge b into Alice: two people left, b's id names Alice.
	run(fmt.Sprintf(`document.getElementById("merge-%s").value = %q; document.querySelector('article[data-person=%q] form[data-action=merge] button').click()`, a, b, a))
	waitGallery(t, ctx, "the merge", func(p galleryPage) bool { return len(p.People) == 2 })
	if p, into, err := g.Get(context.Background(), b); err != nil || p.ID != a || into != a {
		t.Fatalf("after the merge %s resolves to %+v (%s), %v", b, p, into, err)
	}
	alice, _, _ := g.Get(context.Background(), a)
	if alice.Faces() != 8 {
		t.Errorf("Alice has %d faces after the merge, want 8", alice.Faces())
	}

	// Split Alice's first exemplar off: a third person again, kept apart from Alice.
	run(fmt.Sprintf(`document.querySelector('article[data-person=%q] input[name=exemplar][value="0"]').checked = true;
document.querySelector('article[data-person=%q] form[data-action=split] button').click()`, a, a))
	page = waitGallery(t, ctx, "the split", func(p galleryPage) bool { return len(p.People) == 3 })
	if !strings.Contains(page.Message, "kept apart") {
		t.Errorf("message after the split: %q", page.Message)
	}
	if apart, err := g.CannotLink(context.Background(), a); err != nil || len(apart) != 1 {
		t.Errorf("after the split Alice is kept apart from %v, %v", apart, err)
	}
	browser.Screenshot(t, ctx, "live-people-edited.png", true)

	// A new result links a new person: the page offers to read the gallery again, and does.
	ctx2 := context.Background()
	w := people.Window{ID: "later.final", Source: "later", Model: "test-32", Cut: 0.8, AtMillis: time.Now().UnixMilli()}
	r := rand.New(rand.NewPCG(99, 2))
	var c people.Cluster
	for f := range 3 {
		v := make([]float32, 32)
		for i := range v {
			v[i] = float32(r.NormFloat64())
		}
		if f > 0 {
			copy(v, c.Faces[0].Vector)
		}
		c.Faces = append(c.Faces, people.Face{Vector: v, Frame: int64(f)})
	}
	w.Clusters = []people.Cluster{c}
	if _, err := g.Link(ctx2, w); err != nil {
		t.Fatal(err)
	}
	publishResult(t, env.JS, "later", 1, 3)
	deadline := time.Now().Add(15 * time.Second)
	for {
		shown, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`!document.getElementById("changed").hidden`))
		if err != nil {
			t.Fatal(err)
		}
		if shown {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the page never offered to read the gallery again after a new result")
		}
		time.Sleep(20 * time.Millisecond)
	}
	run(`document.querySelector("#changed button").click()`)
	waitGallery(t, ctx, "the person of the new result", func(p galleryPage) bool { return len(p.People) == 4 })
}

// TestPeopleWritesNeedToken: without the token, with a wrong one, or where the server has no
// token, a write is refused and the gallery is unchanged; forget with the token removes the
// person. While NATS is away the page keeps the last list and says so.
func TestPeopleWritesNeedToken(t *testing.T) {
	env := startNATS(t)
	g, ids := seedGallery(t, env, 2)
	_, hs, _, _ := startUI(t, env.Server.ClientURL(), web.Config{Token: "s3cret"})
	_, off, _, _ := startUI(t, env.Server.ClientURL(), web.Config{})
	post := func(base, path, auth, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, base+path, strings.NewReader(body))
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		msg, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(msg)
	}
	a, b := ids[0], ids[1]
	for _, tc := range []struct {
		name, base, path, auth, body string
		want                         int
	}{
		{"rename without a token", hs.URL, "/api/people/" + a + "/name", "", `{"name":"Eve"}`, http.StatusUnauthorized},
		{"merge with a wrong token", hs.URL, "/api/people/" + a + "/merge", "Bearer guess", `{"from":"` + b + `"}`, http.StatusUnauthorized},
		{"forget where writes are off", off.URL, "/api/people/" + a + "/forget", "Bearer s3cret", "", http.StatusForbidden},
		{"a bad name", hs.URL, "/api/people/" + a + "/name", "Bearer s3cret", `{"name":"a\u0007b"}`, http.StatusBadRequest},
		{"a body that is not JSON", hs.URL, "/api/people/" + a + "/name", "Bearer s3cret", `name=Eve`, http.StatusBadRequest},
		{"an unknown person", hs.URL, "/api/people/pzzzzzzz/name", "Bearer s3cret", `{"name":"Eve"}`, http.StatusNotFound},
		{"an unknown action", hs.URL, "/api/people/" + a + "/grow", "Bearer s3cret", `{}`, http.StatusNotFound},
	} {
		code, msg := post(tc.base, tc.path, tc.auth, tc.body)
		if code != tc.want {
			t.Errorf("%s: %d %q, want %d", tc.name, code, msg, tc.want)
		}
		ps, err := g.List(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(ps) != 2 || ps[0].Name != "" || ps[1].Name != "" {
			t.Fatalf("%s: the gallery changed: %+v", tc.name, ps)
		}
	}
	if code, msg := post(off.URL, "/api/people/"+a+"/forget", "", ""); !strings.Contains(msg, "--ui-token") {
		t.Errorf("writes off: %d %q does not say how to turn them on", code, msg)
	}

	get := func(base, path string) string {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s %s", path, resp.Status, body)
		}
		return string(body)
	}
	page := get(off.URL, "/people/")
	if !strings.Contains(page, "read-only") || strings.Contains(page, "<form class=\"edit\" data-action=\"name\"") || debugText.MatchString(page) {
		t.Errorf("the read-only page offers edits or shows debug text:\n%s", page)
	}
	if page := get(hs.URL, "/people/"); debugText.MatchString(page) {
		t.Errorf("debug text %q on the people page", debugText.FindString(page))
	}
	get(hs.URL, "/people/"+a+"/thumbnail.jpg")

	if code, msg := post(hs.URL, "/api/people/"+b+"/forget", "Bearer s3cret", ""); code != http.StatusOK || !strings.Contains(msg, "forgot") {
		t.Fatalf("forget with the token: %d %q", code, msg)
	}
	if _, _, err := g.Get(context.Background(), b); err == nil {
		t.Errorf("%s is still in the gallery after forget", b)
	}

	env.Server.Stop()
	deadline := time.Now().Add(15 * time.Second)
	for {
		page := get(hs.URL, "/people/")
		if strings.Contains(page, "showing the last state") {
			if !strings.Contains(page, `data-person="`+a+`"`) {
				t.Errorf("while NATS is away the page lost the last list:\n%s", page)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the page never said NATS is away:\n%s", page)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestPeopleNoGallery: a deployment without the gallery's buckets gets a page that says so,
// and its API answers 404 with the same words.
func TestPeopleNoGallery(t *testing.T) {
	env := startNATS(t)
	ctx := context.Background()
	if err := env.JS.DeleteKeyValue(ctx, stage.PeopleBucket); err != nil {
		t.Fatal(err)
	}
	_, hs, _, _ := startUI(t, env.Server.ClientURL(), web.Config{Token: "s3cret"})
	for _, tc := range []struct {
		path string
		want int
	}{{"/people/", http.StatusOK}, {"/api/people", http.StatusNotFound}} {
		resp, err := http.Get(hs.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want || !strings.Contains(string(body), "no people gallery") || debugText.Match(body) {
			t.Errorf("GET %s: %s %s", tc.path, resp.Status, body)
		}
	}
}
