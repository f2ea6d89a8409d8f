# Two commands from a fresh clone: `make demo` and `make test`. Both build .venv when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The torch pair this machine installs from disk; override for other platforms.
TORCH ?= torch==2.14.1 torchvision==0.29.1
# Every distribution in the repository, core first; each is installed editable.
DISTS := . $(patsubst %/pyproject.toml,%,$(wildcard plugins/*/pyproject.toml export/pyproject.toml benchmarks/pyproject.toml serve/pyproject.toml openvino/pyproject.toml))
STAMP := $(VENV)/.installed
# The documentation site (mkdocs.yml, docs/): MkDocs with the Material theme, API pages from docstrings.
DOCS_TOOLS := "mkdocs>=1.6,<2" "mkdocs-material>=9.5,<10" "mkdocstrings[python]>=1.0,<2"
# What the test suite drives from outside: property-based fuzzing, ASGI test requests, the official Triton client, a browser,
# and the docs site's builder.
TEST_TOOLS := "pytest>=8" "ruff>=0.6" "hypothesis>=6.100" "httpx>=0.27" "tritonclient[http]>=2.40" "selenium>=4.20" "huggingface_hub>=0.24,<3" \
	"schemathesis>=4.30,<5" "cryptography>=42" $(DOCS_TOOLS)
DEMO := demo-output
# onnxruntime-web for `zoo export --format web`, pinned by package-lock.json: npm ci, then the files the page loads
# are copied into zoo_export's package data (git-ignored), so the Python side needs no npm.
WEB_ORT := export/zoo_export/web/ort
ORT_FILES := ort.wasm.min.mjs ort-wasm-simd-threaded.mjs ort-wasm-simd-threaded.wasm ort.webgpu.min.mjs \
	ort-wasm-simd-threaded.asyncify.mjs ort-wasm-simd-threaded.asyncify.wasm

.PHONY: install demo test docs fuzz lint clean startup-bench

install: $(STAMP) $(WEB_ORT)/.installed

$(WEB_ORT)/.installed: package.json package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund
	mkdir -p $(WEB_ORT)
	cp $(addprefix node_modules/onnxruntime-web/dist/,$(ORT_FILES)) $(WEB_ORT)/
	cp node_modules/onnxruntime-web/package.json $(WEB_ORT)/onnxruntime-web.package.json
	touch $@

$(STAMP): Makefile $(addsuffix /pyproject.toml,$(DISTS))
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip>=24" "setuptools>=77" wheel
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q --no-build-isolation $(addprefix -e ,$(DISTS)) $(TEST_TOOLS)
	# ExecuTorch (zoo export --format executorch, --runtime executorch): an extra, kept off the torch pin above
	$(BIN)/python -m pip install -q --no-build-isolation -e "./export[executorch]"
	# Ray Data (zoo generate --engine ray): the core's extra, installed for its tests; torch stays at the pin above
	$(BIN)/python -m pip install -q --no-build-isolation -e ".[ray]"
	touch $(STAMP)

# The whole tour on embedded data: train the quick presets, look at the pictures, export
# validated ONNX, run a task through onnxruntime, benchmark. Outputs land in $(DEMO)/.
demo: $(STAMP) $(WEB_ORT)/.installed
	rm -rf $(DEMO)
	$(BIN)/zoo list
	$(BIN)/zoo train ae_mnist --out $(DEMO)/runs/ae_mnist
	$(BIN)/zoo generate ae_mnist reconstruct --run $(DEMO)/runs/ae_mnist --out $(DEMO)/ae_mnist_reconstruction.png
	$(BIN)/zoo train vae_faces --out $(DEMO)/runs/vae_faces
	$(BIN)/zoo generate vae_faces sample --run $(DEMO)/runs/vae_faces --out $(DEMO)/vae_faces_samples.png
	$(BIN)/zoo generate vae_faces arithmetic "glasses&male - glasses&~male + ~glasses&~male" --rows 4 \
		--run $(DEMO)/runs/vae_faces --out $(DEMO)/vae_faces_arithmetic.png
	$(BIN)/zoo train cyclegan_hair --out $(DEMO)/runs/cyclegan_hair
	$(BIN)/zoo generate cyclegan_hair roundtrip --run $(DEMO)/runs/cyclegan_hair --out $(DEMO)/cyclegan_hair_roundtrip.png
	$(BIN)/zoo export ae_mnist --run $(DEMO)/runs/ae_mnist --out $(DEMO)/exports/ae_mnist --fp16
	$(BIN)/zoo export vae_faces --run $(DEMO)/runs/vae_faces --out $(DEMO)/exports/vae_faces
	$(BIN)/zoo export cyclegan_hair --run $(DEMO)/runs/cyclegan_hair --out $(DEMO)/exports/cyclegan_hair
	$(BIN)/zoo generate cyclegan_hair roundtrip --runtime onnxruntime --export $(DEMO)/exports/cyclegan_hair \
		--out $(DEMO)/cyclegan_hair_roundtrip_onnxruntime.png
	$(BIN)/zoo export cyclegan_hair --int8 --run $(DEMO)/runs/cyclegan_hair --out $(DEMO)/exports/cyclegan_hair_int8
	$(BIN)/zoo generate cyclegan_hair roundtrip --runtime onnxruntime --precision int8 \
		--export $(DEMO)/exports/cyclegan_hair_int8 --out $(DEMO)/cyclegan_hair_roundtrip_int8.png
	$(BIN)/zoo generate vae_faces sample --runtime onnxruntime --export $(DEMO)/exports/vae_faces \
		--out $(DEMO)/vae_faces_samples_onnxruntime.png
	$(BIN)/zoo bench ae_mnist --device cpu --runtimes torch,onnxruntime --batch-sizes 1,8 \
		--min-seconds 0.5 --export $(DEMO)/exports/ae_mnist
	for model in ae_mnist vae_faces cyclegan_hair; do \
		$(BIN)/zoo export $$model --run $(DEMO)/runs/$$model --out $(DEMO)/web --format web || exit 1; done
	@echo "demo: pictures, runs and exports are in $(DEMO)/"
	@echo "demo: every task in the browser: $(BIN)/zoo web serve $(DEMO)/web, then open http://127.0.0.1:8000/"

test: $(STAMP) $(WEB_ORT)/.installed
	$(BIN)/python -m pytest -q

# The documentation site into site/, warnings as errors (a broken link, a page left out of the nav, a bad docstring).
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

# The long Hypothesis profile of tests/fuzz (>= 5,000 generated cases); the count and outcomes go to
# benchmarks/results/fuzz.json.
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=long ZOO_FUZZ_SUMMARY=benchmarks/results/fuzz.json ZOO_FUZZ_COMMAND="make fuzz" \
		$(BIN)/python -m pytest tests/fuzz -q -p no:cacheprovider
	# Schemathesis from zoo serve's OpenAPI document, every check, against a real server: 0 failures wanted
	$(BIN)/python benchmarks/scripts/serve_fuzz.py --examples 300 --seed 7

lint: $(STAMP)
	$(BIN)/ruff check .

startup-bench: $(STAMP)
	$(BIN)/python benchmarks/scripts/startup.py

clean:
	rm -rf $(VENV) $(DEMO) site
