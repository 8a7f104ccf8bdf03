//! The task registry: task kind -> task type.
//!
//! Adding a task type means writing one module that implements [`TaskType`] and adding one
//! `register` line to [`TaskRegistry::builtin`] (plus a [`TaskKind`] variant).

use super::abduction::Abduction;
use super::config::TasksConfig;
use super::deduction::Deduction;
use super::induction::Induction;
use super::math::Math;
use super::template::{TemplateError, TemplateSet};
use super::TaskType;
use crate::types::TaskKind;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Task types by kind.
#[derive(Default)]
pub struct TaskRegistry {
    types: BTreeMap<TaskKind, Box<dyn TaskType>>,
}

impl std::fmt::Debug for TaskRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskRegistry")
            .field("kinds", &self.types.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl TaskRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Register a task type under its kind; returns the one it replaces, if any.
    pub fn register(&mut self, task_type: Box<dyn TaskType>) -> Option<Box<dyn TaskType>> {
        self.types.insert(task_type.kind(), task_type)
    }

    /// The four built-in task types over one template set.
    pub fn builtin(templates: Arc<TemplateSet>, cfg: &TasksConfig) -> Self {
        let mut r = Self::new();
        let multi = cfg.reject_multiple_functions;
        r.register(Box::new(Deduction::new(
            templates.clone(),
            cfg.references,
            multi,
        )));
        r.register(Box::new(Abduction::new(
            templates.clone(),
            cfg.references,
            multi,
        )));
        r.register(Box::new(Induction::new(
            templates.clone(),
            cfg.induction.clone(),
        )));
        r.register(Box::new(Math::new(templates)));
        r
    }

    /// The built-ins with the template set named in the config (`paper`, `compact` or a path).
    pub fn from_config(cfg: &TasksConfig) -> Result<Self, TemplateError> {
        let templates = Arc::new(TemplateSet::resolve(&cfg.templates)?);
        tracing::info!(templates = %templates.name, source = %cfg.templates, "task templates loaded");
        Ok(Self::builtin(templates, cfg))
    }

    /// The task type of `kind`.
    pub fn get(&self, kind: TaskKind) -> Option<&dyn TaskType> {
        self.types.get(&kind).map(|b| b.as_ref())
    }

    /// Registered kinds, in order.
    pub fn kinds(&self) -> Vec<TaskKind> {
        self.types.keys().copied().collect()
    }

    /// Registered kinds whose tasks the policy proposes.
    pub fn proposable(&self) -> Vec<TaskKind> {
        self.types
            .iter()
            .filter(|(_, t)| t.can_propose())
            .map(|(k, _)| *k)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_registry_has_all_kinds() {
        let r = TaskRegistry::from_config(&TasksConfig::default()).unwrap();
        assert_eq!(
            r.kinds(),
            vec![
                TaskKind::Deduction,
                TaskKind::Abduction,
                TaskKind::Induction,
                TaskKind::Math
            ]
        );
        assert_eq!(r.proposable().len(), 3);
        assert_eq!(r.get(TaskKind::Induction).unwrap().num_references(), 1);
        assert_eq!(r.get(TaskKind::Deduction).unwrap().num_references(), 6);
        fn assert_send_sync<T: Send + Sync>(_: &T) {}
        assert_send_sync(&r);
    }
}
