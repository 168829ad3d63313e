"""factory-boy factories. Passwords are set through Django so hashing is real."""

from __future__ import annotations

import factory
from django.utils import timezone

from accounts.models import User
from escalations.models import Escalation
from messaging.models import Conversation, Message

DEFAULT_PASSWORD = "correct-horse-battery-staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    first_name = factory.Faker("first_name")
    password = factory.PostGenerationMethodCall("set_password", DEFAULT_PASSWORD)

    @classmethod
    def _after_postgeneration(cls, instance, create, results=None):  # type: ignore[no-untyped-def]
        if create:
            instance.save()


class OperatorFactory(UserFactory):
    """Staff in the Operators group, as operators are set up in production."""

    is_staff = True

    @factory.post_generation
    def operators_group(self, create, extracted, **kwargs):  # type: ignore[no-untyped-def]
        if create:
            from escalations.services import operators_group_ensure

            self.groups.add(operators_group_ensure())


class SuperuserFactory(UserFactory):
    is_staff = True
    is_superuser = True


class ConversationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Conversation

    customer = factory.SubFactory(UserFactory)


class MessageFactory(factory.django.DjangoModelFactory):
    """Appends at the conversation's next seq (keeps last_seq in step, like the services)."""

    class Meta:
        model = Message

    conversation = factory.SubFactory(ConversationFactory)
    role = Message.Role.CUSTOMER
    content = factory.Faker("sentence")
    created_at = factory.LazyFunction(timezone.now)

    @classmethod
    def _create(cls, model_class, *args, **kwargs):  # type: ignore[no-untyped-def]
        conversation = kwargs["conversation"]
        if "seq" not in kwargs:
            conversation.last_seq += 1
            kwargs["seq"] = conversation.last_seq
        else:
            conversation.last_seq = max(conversation.last_seq, kwargs["seq"])
        if kwargs.get("role") == Message.Role.CUSTOMER:
            conversation.turn_count += 1
        conversation.save(update_fields=["last_seq", "turn_count"])
        return super()._create(model_class, *args, **kwargs)


class EscalationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Escalation

    conversation = factory.SubFactory(ConversationFactory, status=Conversation.Status.ESCALATED)
    reason = "Customer asked for a human"
    intent = "human_request"
    confidence = 0.9
