//! The recipe registry: an ordinary value the host builds; no globals.

use std::collections::BTreeMap;

use crate::recipe::Recipe;
use crate::{Error, ErrorKind, Result};

/// Recipes by slug.
#[derive(Debug, Clone, Default)]
pub struct RecipeRegistry {
    recipes: BTreeMap<String, Recipe>,
}

impl RecipeRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a recipe, replacing any with the same slug.
    pub fn register(&mut self, recipe: Recipe) -> &mut Self {
        self.recipes.insert(recipe.slug().to_string(), recipe);
        self
    }

    /// Looks a recipe up by slug.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::UnknownRecipe`] listing the known slugs.
    pub fn get(&self, slug: &str) -> Result<&Recipe> {
        self.recipes.get(slug).ok_or_else(|| {
            Error::new(ErrorKind::UnknownRecipe, format!("unknown recipe `{slug}`"))
                .with_hint(format!("known recipes: {}", self.slugs().join(", ")))
        })
    }

    /// Whether a slug is registered.
    pub fn contains(&self, slug: &str) -> bool {
        self.recipes.contains_key(slug)
    }

    /// Registered slugs, sorted.
    pub fn slugs(&self) -> Vec<&str> {
        self.recipes.keys().map(String::as_str).collect()
    }
}
