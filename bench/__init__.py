"""istio-lab's benchmark (issue 6); run it with bench/run."""
