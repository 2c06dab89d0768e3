package report

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/resomap/resomap/sweep"
)

// Links are where a run can be opened: the Temporal Web UI of the
// namespace (workflow pages by ID) and, for tracked runs, MLflow.
type Links struct {
	// WorkflowURL is the page of a workflow ID ("": no links).
	WorkflowURL func(id string) string
}

// page is what index.html shows.
type page struct {
	Sweep, Generated string
	Figures          []figure
	Reading, Started template.HTML
	Rows             []pageRow
	Spec             string
}

type figure struct {
	Name string
	// Inline is an SVG drawn into the page or an <img> of a PNG as a data
	// URI: the page needs no other file.
	Inline template.HTML
}

type pageRow struct {
	Row
	BestAcc, FinalAcc, Speed, Wall, BestEpoch string
	Run, MLflow                               string // links ("": none)
}

var pageTemplate = template.Must(template.New("index").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ResoMap: {{.Sweep}}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:14px}th,td{border:1px solid #ccc;padding:4px 8px}
td.n{text-align:right}tr.completed td.s{color:#080}tr.failed td.s,tr.cancelled td.s,tr.terminated td.s{color:#b00}
figure{margin:1em 0}figure svg,figure img{max-width:100%;height:auto}figcaption{font-size:13px;color:#555}
pre{background:#f6f6f6;padding:1em;overflow:auto;font-size:12px}
</style></head><body>
<h1>ResoMap report: sweep {{.Sweep}}</h1>
<p>How validation accuracy and training cost change with input resolution, per model. Generated {{.Generated}}.</p>
{{range .Figures}}<figure>{{.Inline}}<figcaption>{{.Name}}</figcaption></figure>
{{end}}
<h2>Reading</h2>
{{.Reading}}
<h2>Results</h2>
<table><tr><th>model</th><th>resolution</th><th>seed</th><th>status</th><th>epochs</th><th>best val acc</th><th>best epoch</th><th>final val acc</th><th>images/s</th><th>wall (s)</th><th>started from</th><th>run</th><th>note</th></tr>
{{range .Rows}}<tr class="{{.Status}}"><td>{{.Model}}</td><td class="n">{{.Resolution}}</td><td class="n">{{if .Seed}}{{.Seed}}{{end}}</td><td class="s">{{.Status}}</td><td class="n">{{.EpochsRun}}/{{.Epochs}}</td><td class="n">{{.BestAcc}}</td><td class="n">{{.BestEpoch}}</td><td class="n">{{.FinalAcc}}</td><td class="n">{{.Speed}}</td><td class="n">{{.Wall}}</td><td>{{if .StartedFrom}}{{.StartedFrom}}{{else}}scratch{{end}}</td><td>{{if .Run}}<a href="{{.Run}}">Temporal</a>{{end}}{{if .MLflow}} <a href="{{.MLflow}}">MLflow</a>{{end}}</td><td>{{.Reason}}</td></tr>
{{end}}</table>
{{.Started}}
<h2>Sweep spec</h2>
<pre>{{.Spec}}</pre>
</body></html>
`))

// WriteHTML writes index.html: the report's figures (those written into dir
// by Write), its reading, tables and links to each run, in one
// self-contained page that opens offline.
func (r *Report) WriteHTML(figs []string, links Links, w io.Writer) error {
	p := page{Sweep: r.Sweep, Generated: time.Now().UTC().Format("2006-01-02 15:04 UTC")}
	for _, f := range figs {
		fig, ok, err := inlineFigure(f, figs)
		if err != nil {
			return err
		}
		if ok {
			p.Figures = append(p.Figures, fig)
		}
	}
	var reading, started bytes.Buffer
	r.writeReading(&reading)
	p.Reading = markdownish(reading.String())
	r.writeStartedFrom(&started)
	p.Started = markdownish(started.String())
	for _, x := range r.Rows {
		pr := pageRow{Row: x, BestAcc: fmtAcc(x.BestValAcc), FinalAcc: fmtAcc(x.FinalValAcc), Speed: fmtNum(x.ImagesPerSec, "%.0f"),
			Wall: fmtNum(x.WallSeconds, "%.0f"), BestEpoch: "—"}
		if x.BestEpoch != nil {
			pr.BestEpoch = fmt.Sprint(*x.BestEpoch)
		}
		if links.WorkflowURL != nil && x.Status != Missing {
			pr.Run = links.WorkflowURL("sweep-" + r.Sweep + "/" + sweep.TrainingID(x.Model, x.Resolution, x.Seed))
		}
		pr.MLflow = x.MLflowURL
		p.Rows = append(p.Rows, pr)
	}
	if r.Spec != nil {
		b, _ := json.MarshalIndent(r.Spec, "", "  ")
		p.Spec = string(b)
	}
	return pageTemplate.Execute(w, p)
}

// inlineFigure returns a figure's markup: an SVG inline, a PNG as a data
// URI when there is no SVG of it (ok false for an SVG's PNG twin and for
// files that are no figure).
func inlineFigure(f string, all []string) (figure, bool, error) {
	name := strings.TrimSuffix(filepath.Base(f), filepath.Ext(f))
	switch filepath.Ext(f) {
	case ".svg":
		b, err := os.ReadFile(f)
		if err != nil {
			return figure{}, false, err
		}
		if i := bytes.Index(b, []byte("<svg")); i > 0 {
			b = b[i:] // the XML prolog has no place inside HTML
		}
		return figure{Name: name, Inline: template.HTML(b)}, true, nil //nolint:gosec // our own figure
	case ".png":
		for _, g := range all {
			if g == strings.TrimSuffix(f, ".png")+".svg" {
				return figure{}, false, nil
			}
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return figure{}, false, err
		}
		img := `<img alt="` + template.HTMLEscapeString(name) + `" src="data:image/png;base64,` + base64.StdEncoding.EncodeToString(b) + `">`
		return figure{Name: name, Inline: template.HTML(img)}, true, nil //nolint:gosec // escaped above
	}
	return figure{}, false, nil
}

// markdownish turns the report's Markdown paragraphs, lists and headings
// into HTML (escaped; **bold** kept).
func markdownish(md string) template.HTML {
	var out strings.Builder
	inList := false
	for _, para := range strings.Split(strings.TrimSpace(md), "\n") {
		line := template.HTMLEscapeString(strings.TrimSpace(para))
		line = boldPairs(line)
		switch {
		case strings.HasPrefix(line, "- "):
			if !inList {
				out.WriteString("<ul>")
				inList = true
			}
			out.WriteString("<li>" + strings.TrimPrefix(line, "- ") + "</li>")
			continue
		case inList:
			out.WriteString("</ul>")
			inList = false
		}
		switch {
		case line == "":
		case strings.HasPrefix(line, "### "), strings.HasPrefix(line, "## "):
			out.WriteString("<h3>" + strings.TrimLeft(line, "# ") + "</h3>")
		case strings.HasPrefix(line, "|"):
			out.WriteString("<pre>" + line + "</pre>")
		default:
			out.WriteString("<p>" + line + "</p>")
		}
	}
	if inList {
		out.WriteString("</ul>")
	}
	return template.HTML(out.String()) //nolint:gosec // escaped line by line
}

func boldPairs(s string) string {
	for {
		i := strings.Index(s, "**")
		if i < 0 {
			return s
		}
		j := strings.Index(s[i+2:], "**")
		if j < 0 {
			return s
		}
		s = s[:i] + "<b>" + s[i+2:i+2+j] + "</b>" + s[i+2+j+2:]
	}
}

func fmtAcc(v *float64) string { return fmtNum(v, "%.4f") }

func fmtNum(v *float64, format string) string {
	if v == nil {
		return "—"
	}
	return fmt.Sprintf(format, *v)
}
