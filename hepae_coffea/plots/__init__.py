"""ATLAS-style figures and the Markdown report."""

#: the groups of figures `hepae_coffea.plots.results.plot_results` can draw (``figures=``,
#: ``hepae plot --figures``), all by default; here, so that the command line lists them
#: without importing the plotting code
FIGURE_GROUPS = ("residuals", "distributions", "scores", "latents")
