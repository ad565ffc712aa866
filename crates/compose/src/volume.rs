//! Files for a remote engine: a host bind mount names a folder of the
//! engine's machine, so files the run hands to containers (the certificates)
//! go into a project volume instead, filled from here before `up`.

use camino::Utf8Path;

use crate::error::{Error, Result};
use crate::project::Project;

impl Project {
    /// The engine's name of the project volume `volume` (as Compose names it).
    pub fn volume_name(&self, volume: &str) -> String {
        format!("{}_{volume}", self.name())
    }

    /// Creates the project volume `volume` (labelled as Compose labels its
    /// own, so `up` adopts it and `down --volumes` removes it) and copies the
    /// files of `dir` into it, through a container that is created, never
    /// started, from the first of `images` the engine has.
    pub fn fill_volume(&self, volume: &str, dir: &Utf8Path, images: &[String]) -> Result<()> {
        let here = &self.spec.dir;
        let name = self.volume_name(volume);
        let project_label = format!("com.docker.compose.project={}", self.name());
        let volume_label = format!("com.docker.compose.volume={volume}");
        crate::docker([
            "volume",
            "create",
            "--label",
            &project_label,
            "--label",
            &volume_label,
            &name,
        ])
        .output(here)?;
        let helper = format!("{}-e2e-fill-{volume}", self.name());
        let _ = crate::docker(["rm", "--force", &helper]).output(here);
        let mount = format!("{name}:/fill");
        let mut last = None;
        let created = images.iter().find(|image| {
            // Labelled with the project: a run killed here leaves an orphan that
            // the next `up --remove-orphans`, a purge or `reap` removes.
            let out = crate::docker([
                "create",
                "--name",
                &helper,
                "--label",
                &project_label,
                "--entrypoint",
                "/e2e-never-runs",
                "-v",
                &mount,
                image.as_str(),
            ])
            .output(here);
            let ok = out.is_ok();
            last = out.err();
            ok
        });
        if created.is_none() {
            return Err(match last {
                Some(e) => e.into(),
                None => Error::Failed {
                    command: "docker create".into(),
                    status: "no image".into(),
                    stderr: format!(
                        "no image of the stack is on the engine yet to fill the volume {name} with"
                    ),
                },
            });
        }
        let copied =
            crate::docker(["cp", &format!("{dir}/."), &format!("{helper}:/fill/")]).output(here);
        let removed = crate::docker(["rm", "--force", &helper]).output(here);
        copied?;
        removed?;
        Ok(())
    }
}
