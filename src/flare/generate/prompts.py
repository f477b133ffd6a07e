"""Class prompts: templates with ``{class}`` filled by the taxonomy's display names, plus per-class overrides."""

from __future__ import annotations

from dataclasses import dataclass, field

from flare.core.config import GenerateConfig
from flare.core.errors import ConfigError
from flare.core.taxonomy import Taxonomy

__all__ = ["PromptBuilder", "DEFAULT_TEMPLATE"]

# The config model is the one home of the default template.
DEFAULT_TEMPLATE = GenerateConfig.model_fields["templates"].default[0]


@dataclass(frozen=True)
class PromptBuilder:
    """Which prompts each class gets.

    Args:
        templates: strings with a ``{class}`` placeholder, filled with ``Taxonomy.display_name(label)``.
        class_prompts: label → full prompts that replace the templates for that class.
    """

    taxonomy: Taxonomy
    templates: tuple[str, ...] = (DEFAULT_TEMPLATE,)
    class_prompts: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.templates and not self.class_prompts:
            raise ConfigError("generate.templates: give at least one template")
        for template in self.templates:
            if "{class}" not in template:
                raise ConfigError(f"generate.templates: {template!r} has no {{class}} placeholder")
        for label, prompts in self.class_prompts.items():
            if label not in self.taxonomy.fine_to_macro:
                raise ConfigError(f"generate.class_prompts: {label!r} is not one of "
                                  f"{', '.join(self.taxonomy.fine_classes)}")
            if not prompts:
                raise ConfigError(f"generate.class_prompts.{label}: give at least one prompt")

    def prompts_for(self, label: str) -> list[str]:
        """Every prompt of ``label``, in a fixed order."""
        if label in self.class_prompts:
            return list(self.class_prompts[label])
        name = self.taxonomy.display_name(label)
        return [template.replace("{class}", name) for template in self.templates]

    def prompt(self, label: str, index: int) -> str:
        """The ``index``-th image of a class cycles through its prompts."""
        prompts = self.prompts_for(label)
        return prompts[index % len(prompts)]

    def all_prompts(self) -> dict[str, list[str]]:
        return {label: self.prompts_for(label) for label in self.taxonomy.fine_classes}
