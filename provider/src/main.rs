//! `terraform-provider-aigov`: the plugin protocol and resources land in their own issue.
//! Run by hand, it says what it is, as go-plugin providers do.
#![forbid(unsafe_code)]

fn main() {
    eprintln!(
        "This binary is a plugin. These are not meant to be executed directly.\n\
         Please execute the program that consumes these plugins, which will\n\
         load any plugins automatically ({} catalog models known).",
        aigov_api::catalog::entries().len()
    );
    std::process::exit(1);
}
