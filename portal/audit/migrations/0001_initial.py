import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="AuditEntry",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("created", models.DateTimeField(auto_now_add=True, db_index=True)),
                ("actor_name", models.CharField(max_length=150)),
                (
                    "action",
                    models.CharField(
                        choices=[
                            ("launch", "launch"),
                            ("pause", "pause"),
                            ("resume", "resume"),
                            ("stop", "stop"),
                            ("visibility", "visibility"),
                            ("revoke", "revoke"),
                            ("unflag", "unflag"),
                            ("announcement", "announcement"),
                            ("deactivate", "deactivate user"),
                            ("delete_user", "delete user"),
                        ],
                        max_length=32,
                    ),
                ),
                (
                    "target",
                    models.CharField(help_text="what was acted on, e.g. 'campaign cartpole-demo'", max_length=200),
                ),
                ("detail", models.CharField(blank=True, max_length=500)),
                (
                    "actor",
                    models.ForeignKey(
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={"verbose_name_plural": "audit entries", "ordering": ["-created", "-pk"]},
        ),
    ]
