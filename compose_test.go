package resomap_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// docker-compose.yml cannot be run here (no Docker engine), so it is kept
// honest: docker-compose validates it, and every variable it sets on the
// worker is one the code reads.
func TestComposeFileIsValidAndUsesRealKnobs(t *testing.T) {
	bin, err := exec.LookPath("docker-compose")
	if err != nil {
		t.Fatal("docker-compose not installed: run `make deps`")
	}
	// Resolved as a user would, with the example .env.
	resolved, err := exec.Command(bin, "--env-file", ".env.example", "-f", "docker-compose.yml", "config").CombinedOutput()
	if err != nil {
		t.Fatalf("docker-compose config: %v\n%s", err, resolved)
	}
	checkPortsAreLocal(t, resolved)
	b, err := os.ReadFile("docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	checkNoSecrets(t, b)
	var doc struct {
		Services map[string]struct {
			Environment map[string]string `yaml:"environment"`
			Restart     string            `yaml:"restart"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	worker, ok := doc.Services["worker"]
	if !ok || len(worker.Environment) == 0 {
		t.Fatal("no worker service with environment")
	}
	var src strings.Builder
	for _, dir := range []string{"worker", "internal/temporalx", "store"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
		for _, f := range files {
			b, _ := os.ReadFile(f)
			src.Write(b)
		}
	}
	sdkChain := regexp.MustCompile(`^AWS_(ACCESS_KEY_ID|SECRET_ACCESS_KEY|REGION|ENDPOINT_URL_S3|PROFILE)$`)
	for name := range worker.Environment {
		if sdkChain.MatchString(name) {
			continue // read by the AWS SDK's default configuration chain
		}
		if !strings.Contains(src.String(), `"`+name+`"`) {
			t.Errorf("docker-compose sets %s on the worker, but no code reads it", name)
		}
	}
	if worker.Restart != "on-failure" && worker.Restart != "always" && worker.Restart != "unless-stopped" {
		t.Errorf("the worker service needs a restart policy: a stuck worker exits for a fresh one, restart=%q", worker.Restart)
	}
	if !strings.HasPrefix(worker.Environment["RESOMAP_STORE"], "s3://") {
		t.Errorf("the worker should use the compose S3 service, RESOMAP_STORE=%q", worker.Environment["RESOMAP_STORE"])
	}
}

// checkPortsAreLocal: by default nothing listens beyond this machine.
func checkPortsAreLocal(t *testing.T, resolved []byte) {
	t.Helper()
	var doc struct {
		Services map[string]struct {
			Ports []any `yaml:"ports"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(resolved, &doc); err != nil {
		t.Fatal(err)
	}
	n := 0
	for name, svc := range doc.Services {
		for _, p := range svc.Ports {
			n++
			b, _ := yaml.Marshal(p)
			if !strings.Contains(string(b), "127.0.0.1") {
				t.Errorf("service %s publishes %s beyond 127.0.0.1", name, strings.TrimSpace(string(b)))
			}
		}
	}
	if n == 0 {
		t.Error("no published ports found in the resolved compose file")
	}
}

// checkNoSecrets: passwords and keys come from .env, never from the file.
func checkNoSecrets(t *testing.T, compose []byte) {
	t.Helper()
	secret := regexp.MustCompile(`(?m)^\s*(\w*(PASSWORD|PWD|SECRET|ACCESS_KEY)\w*):\s*(.*)$`)
	for _, m := range secret.FindAllSubmatch(compose, -1) {
		if v := string(m[3]); !strings.HasPrefix(v, "${") {
			t.Errorf("docker-compose.yml sets %s to a literal (%q): take it from .env", m[1], v)
		}
	}
}
