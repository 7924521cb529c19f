# reprolab: `make demo` sets everything up and runs every study at quick scale; `make test` runs the suite.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.installed
FORCE  ?=
EXTRAS := zclip,gaussians,vlm_sae,fresca,llm,whisper_lm,grm,agents,agents_peers,distributed,ts_select,ts_select_data,ags,slm_scaling,drc_planning,cups,igpg,opencodereasoning,wikivideo,vlm_rl,javisdit,skyreels_a2,actalker,dev
# Debian data and tools: Fashion-MNIST (fresca); espeak-ng, sox and translated help texts (whisper_lm);
# bubblewrap and libseccomp2 for reprolab.sandbox's namespaces and seccomp filter;
# chromium, headless, for the report's browser test (tests/test_report_browser.py, driven by playwright).
# --no-install-recommends: the help packages otherwise pull in a web browser.
DEBIAN_ASSETS := dataset-fashion-mnist espeak-ng sox libreoffice-help-es libreoffice-help-ca fortunes-es gimp-help-ca libreoffice-help-en-us fortunes libreoffice-help-eu bubblewrap libseccomp2 chromium
export REPROLAB_THREADS ?= 2
# make test: pytest-xdist workers side by side (tests/conftest.py gives each REPROLAB_THREADS / workers threads)
TEST_WORKERS ?= 2

.PHONY: help setup demo test test-slow report bench assets clean readme

help:  ## this list
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s '	'

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# torch first and exactly: the CPU wheel of 2.13.0 on disk (anything else pulls CUDA builds).
	$(PIP) install --quiet torch==2.13.0
	# llama-cpp-python has no wheel for this platform on PyPI: build it from source (about 5 minutes on 2 cores).
	CMAKE_BUILD_PARALLEL_LEVEL=2 $(PIP) install --quiet --no-binary llama-cpp-python -c constraints.txt 'llama-cpp-python[server]'
	$(PIP) install --quiet -c constraints.txt -e '.[$(EXTRAS)]'
	# The official Whisper-LM LogitsProcessor, for the parity test only: its declared deps (openai-whisper) do not build offline.
	$(PIP) install --quiet --no-deps whisper-lm-transformers==0.2.0
	# ts_select: statsforecast 2.1.1 and its stack declare pandas<3 but run under our pandas 3.1.1 (tested): --no-deps.
	$(PIP) install --quiet --no-deps -c constraints.txt statsforecast==2.1.1 coreforecast==0.0.20 utilsforecast==0.2.17 fugue==0.9.7 triad==1.0.4 adagio==0.2.6
	# ags: gplearn 0.4.3 (a peer of the symbolic-regression benchmark) declares scikit-learn>=1.8 but runs under our 1.7.2 (tested): --no-deps.
	$(PIP) install --quiet --no-deps -c constraints.txt gplearn==0.4.3
	$(PY) -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__"
	touch $(STAMP)

setup: $(STAMP)  ## create .venv with the pinned dependencies

assets: $(STAMP)  ## install offline assets: Debian data sets, and model weights (`reprolab assets install`, sha256-checked)
	$(VENV)/bin/reprolab assets install
	@dpkg -s $(DEBIAN_ASSETS) >/dev/null 2>&1 || apt-get install -y -q --no-install-recommends $(DEBIAN_ASSETS) >/dev/null 2>&1 \
	  || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends $(DEBIAN_ASSETS) >/dev/null 2>&1) \
	  || echo "warning: could not install Debian's $(DEBIAN_ASSETS) (needs root): fresca and whisper_lm studies and tests will skip"

demo: setup assets  ## run every study at quick scale and write runs/report/index.html (FORCE=1 reruns)
	$(VENV)/bin/reprolab demo --scale quick $(if $(FORCE),--force,)

test: setup assets  ## the test suite (under 10 minutes on 2 cores; TEST_WORKERS=1 runs it in one process)
	$(PY) -m pytest $(if $(filter-out 1,$(TEST_WORKERS)),-n $(TEST_WORKERS),)

test-slow: setup  ## only the slow tests
	$(PY) -m pytest -m slow

report: setup  ## re-render the report from saved results
	$(VENV)/bin/reprolab report

bench: setup  ## every benchmark
	for b in $$($(PY) -c "from reprolab.study import benches; print(' '.join(benches()))"); do $(VENV)/bin/reprolab bench $$b; done

readme: setup  ## regenerate README's table of papers from docs/status.md
	$(PY) -m reprolab.docs

clean:  ## remove the venv and all results
	rm -rf $(VENV) runs
