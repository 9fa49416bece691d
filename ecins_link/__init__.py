"""ecins-link: link multi-agency extracts into one person + location graph and flag toxic-cocktail risk."""

__version__ = "0.1.0"
