//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/regengraph/regen/internal/testenv"
	"github.com/regengraph/regen/progress"
)

// servicePage is a page of another origin than the service's, allowed by
// -cors-origin, as a frontend's development server would serve it: it
// starts a run with the token, opens an EventSource before it has a
// session (refused), logs in with POST /session, sends a cancel with the
// cookie alone (refused), and follows the run with EventSource; then it
// posts what it saw to /result. Its arguments: the service's base URL,
// the token, and the final events' types.
const servicePage = `<!doctype html>
<meta charset="utf-8">
<title>regen service</title>
<script>
const base = %q, token = %q, final = %s;
const out = {got: [], errors: 0};
const report = () => fetch("/result", {method: "POST", body: JSON.stringify(out)});
// Resolves with "closed" once EventSource gives up on url for good.
const refused = (url) => new Promise((resolve) => {
  const es = new EventSource(url, {withCredentials: true});
  es.onopen = () => { es.close(); resolve("open"); };
  es.onerror = () => { if (es.readyState === EventSource.CLOSED) resolve("closed"); };
});
(async () => {
  const r = await fetch(base + "/lectures/browser/runs", {method: "POST",
    headers: {Authorization: "Bearer " + token, "Content-Type": "application/json"}, body: JSON.stringify({seconds: 30})});
  out.create = r.status;
  const run = await r.json();
  out.before = await refused(base + run.events);
  const s = await fetch(base + "/session", {method: "POST", credentials: "include", headers: {Authorization: "Bearer " + token}});
  out.session = s.status;
  out.cookieVisible = document.cookie.includes("regen_session");
  const c = await fetch(base + "/runs/" + run.runId + "/cancel", {method: "POST", credentials: "include"});
  out.cancel = c.status;
  const es = new EventSource(base + run.events, {withCredentials: true});
  es.onerror = () => { out.errors++; if (es.readyState === EventSource.CLOSED) report(); };
  es.onmessage = (m) => {
    const e = JSON.parse(m.data);
    out.got.push(e);
    if (final.includes(e.type)) { es.close(); report(); }
  };
})().catch((e) => { out.error = String(e); report(); });
</script>`

// A real browser, on a page of another origin that -cors-origin allows,
// follows a run with EventSource: refused before it logs in (it cannot
// send the Authorization header), then, with the session cookie of POST
// /session, it gets the whole run. The cookie does not authorize a
// cancel, nor can the page's scripts read it.
func TestBrowserPage(t *testing.T) {
	browser := testenv.FindChromium(t)
	result := make(chan []byte, 1)
	var page string // set before the server starts
	mux := http.NewServeMux()
	mux.HandleFunc("GET /page", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, page)
	})
	mux.HandleFunc("POST /result", testenv.PostResult(result))
	mux.HandleFunc("GET /favicon.ico", http.NotFound)
	pages := httptest.NewUnstartedServer(mux)
	origin := "http://" + pages.Listener.Addr().String()

	h := startServiceWith(t, 5*time.Millisecond, func(c *config) { c.corsOrigins = []string{origin} })
	final, err := json.Marshal([]progress.Type{progress.RunFinished, progress.RunFailed, progress.RunCancelled})
	require.NoError(t, err)
	page = fmt.Sprintf(servicePage, h.base, token, final)
	pages.Start()
	defer pages.Close() // a second Close does nothing

	c := testenv.StartChromium(t, browser, pages.URL+"/page")
	defer c.Stop()

	var body []byte
	select {
	case body = <-result:
	case <-c.Exited:
		t.Fatalf("Chromium exited before the page posted its result; its stderr:\n%s", c.Stderr(30))
	case <-time.After(2 * time.Minute): // a bound against a hang
		c.Stop()
		t.Fatalf("the page posted no result in 2 minutes; Chromium's stderr:\n%s", c.Stderr(30))
	}
	c.Stop()

	var got struct {
		Got           []progress.Event `json:"got"`
		Errors        int              `json:"errors"`
		Create        int              `json:"create"`
		Before        string           `json:"before"`
		Session       int              `json:"session"`
		CookieVisible bool             `json:"cookieVisible"`
		Cancel        int              `json:"cancel"`
		Error         string           `json:"error"`
	}
	require.NoError(t, json.Unmarshal(body, &got), "%s", body)
	require.Empty(t, got.Error, "the page failed")
	assert.Equal(t, http.StatusAccepted, got.Create, "the page starts a run with the token")
	assert.Equal(t, "closed", got.Before, "an EventSource without the session is refused for good")
	assert.Equal(t, http.StatusOK, got.Session, "POST /session")
	assert.False(t, got.CookieVisible, "the cookie is HttpOnly")
	assert.Equal(t, http.StatusUnauthorized, got.Cancel, "a cancel with the cookie alone")
	require.NotEmpty(t, got.Got, "the events")
	runID := got.Got[0].RunID
	requireWholeRun(t, runID, got.Got)
	assert.Equal(t, "succeeded", h.getRun(runID).Status, "the cancel was refused")
	assert.Zero(t, got.Errors, "the stream was not refused nor dropped")
	pages.Close()
	require.NoError(t, h.shutdown())
	goleak.VerifyNone(t, h.leaks)
}
