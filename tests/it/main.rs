
mod simulate;
