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

// docker-compose.yml is started for real by the stack test (make
// test-stack); this one, quick and in every run, keeps it honest: it
// resolves (with the local override and the GPU profile too), every
// variable it sets on the worker is one the code reads, nothing listens
// beyond this machine, and no secret is written in it.
func TestComposeFileIsValidAndUsesRealKnobs(t *testing.T) {
	bin, err := exec.LookPath("docker-compose")
	if err != nil {
		t.Fatal("docker-compose not installed: run `make deps`")
	}
	envFile := filepath.Join(t.TempDir(), "env")
	if err := os.WriteFile(envFile, []byte("POSTGRES_PASSWORD=p0stgres-test\nS3_ACCESS_KEY=resomap\nS3_SECRET_KEY=s3-secret-test\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	config := func(args ...string) []byte {
		t.Helper()
		out, err := exec.Command(bin, append([]string{"--env-file", envFile, "-f", "docker-compose.yml"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("docker-compose %v: %v\n%s", args, err, out)
		}
		return out
	}
	resolved := config("config")
	checkLocalImages(t, config("-f", "docker-compose.local.yml", "config"))
	checkGPUProfile(t, config("--profile", "gpu", "config"))
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

// The example .env has no usable secret: resolving with it fails at once,
// naming the variable to set.
func TestComposeRefusesTheExampleEnv(t *testing.T) {
	out, err := exec.Command("docker-compose", "--env-file", ".env.example", "-f", "docker-compose.yml", "config").CombinedOutput()
	if err == nil {
		t.Fatal("docker-compose accepted .env.example as it is")
	}
	if !strings.Contains(string(out), "POSTGRES_PASSWORD is empty. Set your own in .env") {
		t.Errorf("the refusal does not name the variable:\n%s", out)
	}
}

// checkLocalImages: the override swaps every upstream image for one
// `make images` builds.
func checkLocalImages(t *testing.T, resolved []byte) {
	t.Helper()
	var doc struct {
		Services map[string]struct {
			Image    string   `yaml:"image"`
			Profiles []string `yaml:"profiles"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(resolved, &doc); err != nil {
		t.Fatal(err)
	}
	for name, svc := range doc.Services {
		if len(svc.Profiles) > 0 && svc.Profiles[0] == "gpu" {
			continue // built from Dockerfile.cuda on a GPU host
		}
		if !strings.HasPrefix(svc.Image, "resomap/") || !strings.HasSuffix(svc.Image, ":local") {
			t.Errorf("docker-compose.local.yml leaves %s on %q", name, svc.Image)
		}
	}
}

// checkGPUProfile: the GPU worker reserves the host's GPUs.
func checkGPUProfile(t *testing.T, resolved []byte) {
	t.Helper()
	var doc struct {
		Services map[string]struct {
			Build struct {
				Dockerfile string `yaml:"dockerfile"`
			} `yaml:"build"`
			Environment map[string]string `yaml:"environment"`
			Deploy      struct {
				Resources struct {
					Reservations struct {
						Devices []struct {
							Capabilities []string `yaml:"capabilities"`
						} `yaml:"devices"`
					} `yaml:"reservations"`
				} `yaml:"resources"`
			} `yaml:"deploy"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(resolved, &doc); err != nil {
		t.Fatal(err)
	}
	gpu, ok := doc.Services["worker-gpu"]
	if !ok {
		t.Fatal("no worker-gpu service in the gpu profile")
	}
	devs := gpu.Deploy.Resources.Reservations.Devices
	if gpu.Build.Dockerfile != "Dockerfile.cuda" || gpu.Environment["RESOMAP_DEVICE"] != "cuda" ||
		len(devs) != 1 || len(devs[0].Capabilities) != 1 || devs[0].Capabilities[0] != "gpu" {
		t.Errorf("worker-gpu: want Dockerfile.cuda, RESOMAP_DEVICE=cuda and a GPU reservation, got %+v", gpu)
	}
}

// The secured overlay resolves on top of the others: Temporal requires
// client certificates, every client of it presents one, the UI sits behind
// its gate, workers and the starter hold the workers' S3 account and not
// the root key; it names what .env lacks, and holds no secret itself.
func TestSecureComposeOverlay(t *testing.T) {
	env := "POSTGRES_PASSWORD=p0stgres-test\nS3_ACCESS_KEY=resomap-root\nS3_SECRET_KEY=root-secret-test\n" +
		"S3_WORKER_ACCESS_KEY=resomap-worker\nS3_WORKER_SECRET_KEY=worker-secret-test\nUI_PASSWORD=ui-password-test\n"
	config := func(env string) ([]byte, error) {
		envFile := filepath.Join(t.TempDir(), "env")
		if err := os.WriteFile(envFile, []byte(env), 0o600); err != nil {
			t.Fatal(err)
		}
		return exec.Command("docker-compose", "--env-file", envFile, "-f", "docker-compose.yml", "-f", "docker-compose.local.yml",
			"-f", "docker-compose.secure.yml", "--profile", "gpu", "config").CombinedOutput()
	}
	out, err := config(env)
	if err != nil {
		t.Fatalf("docker-compose config with the secure overlay: %v\n%s", err, out)
	}
	var doc struct {
		Services map[string]struct {
			Environment map[string]string `yaml:"environment"`
			NetworkMode string            `yaml:"network_mode"`
			Command     []string          `yaml:"command"`
			Entrypoint  []string          `yaml:"entrypoint"`
			Volumes     []any             `yaml:"volumes"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(out, &doc); err != nil {
		t.Fatal(err)
	}
	svc := doc.Services
	if e := svc["temporal"].Environment; e["TEMPORAL_TLS_REQUIRE_CLIENT_AUTH"] != "true" || e["TEMPORAL_TLS_FRONTEND_CERT"] == "" ||
		e["TEMPORAL_TLS_CLIENT1_CA_CERT"] == "" || e["TEMPORAL_TLS_CLIENT_CERT_PATH"] == "" {
		t.Errorf("temporal: %v, want client certificates required and its health check presenting one", e)
	}
	for name, sv := range svc {
		if _, ok := sv.Environment["AWS_ACCESS_KEY_ID"]; ok && sv.Environment["AWS_ACCESS_KEY_ID"] != "resomap-worker" {
			t.Errorf("%s holds S3 key %q, want the workers' account", name, sv.Environment["AWS_ACCESS_KEY_ID"])
		}
		for _, v := range sv.Volumes { // single files, never the folder with the keys of others
			b, _ := yaml.Marshal(v)
			if strings.Contains(string(b), "/certs") && !strings.Contains(string(b), ".pem") || strings.Contains(string(b), "ca-private") {
				t.Errorf("%s mounts %s", name, strings.TrimSpace(string(b)))
			}
		}
	}
	for _, name := range []string{"worker", "worker-gpu", "starter"} {
		e := svc[name].Environment
		if e["TEMPORAL_TLS_CLIENT_CERT_PATH"] == "" || e["TEMPORAL_TLS_SERVER_CA_CERT_PATH"] == "" || e["TEMPORAL_TLS_SERVER_NAME"] != "temporal" {
			t.Errorf("%s presents no client certificate: %v", name, e)
		}
		if e["AWS_ACCESS_KEY_ID"] != "resomap-worker" || e["AWS_SECRET_ACCESS_KEY"] != "worker-secret-test" {
			t.Errorf("%s holds S3 key %q, want the workers' account", name, e["AWS_ACCESS_KEY_ID"])
		}
	}
	if e := svc["temporal-ui"].Environment; e["TEMPORAL_UI_PORT"] != "8081" || e["TEMPORAL_TLS_CERT"] == "" {
		t.Errorf("temporal-ui: %v, want it behind the gate on 8081, presenting a client certificate", e)
	}
	if g := svc["ui-gate"]; g.NetworkMode != "service:temporal-ui" || g.Environment["UI_PASSWORD"] != "ui-password-test" ||
		!strings.Contains(strings.Join(g.Entrypoint, " "), "uigate") {
		t.Errorf("ui-gate: %+v, want uigate in the UI's network with its password", g)
	}
	if !strings.Contains(strings.Join(svc["s3"].Command, " "), "--iam-dir") {
		t.Errorf("s3: %v, want accounts (--iam-dir)", svc["s3"].Command)
	}
	for _, missing := range []string{"UI_PASSWORD", "S3_WORKER_SECRET_KEY"} {
		var kept []string
		for _, kv := range strings.Split(strings.TrimSpace(env), "\n") {
			if !strings.HasPrefix(kv, missing+"=") {
				kept = append(kept, kv)
			}
		}
		if out, err := config(strings.Join(kept, "\n") + "\n"); err == nil || !strings.Contains(string(out), missing+" is empty") {
			t.Errorf("without %s: %v\n%s; want refused naming it", missing, err, out)
		}
	}
	b, err := os.ReadFile("docker-compose.secure.yml")
	if err != nil {
		t.Fatal(err)
	}
	checkNoSecrets(t, b)
}
