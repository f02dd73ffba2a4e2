//! The seed's parent and child tasks: children return nothing, one value,
//! several values, or raise an error that reaches the parent.

use mtask::Error;

fn main() -> mtask::Result<()> {
    println!("{:?}", mtask::call_fn(return_none, &())?);
    println!("{:?}", mtask::call_fn(return_one, &())?);
    println!("{:?}", mtask::call_fn(return_many, &())?);
    match mtask::call_fn(raise_exception, &()) {
        Err(Error::Task { error, .. }) => println!("caught exception: {}", error.message()),
        other => println!("expected an exception, got {other:?}"),
    }
    Ok(())
}

fn return_none() -> mtask::Result<Option<i32>> {
    mtask::yield_now();
    Ok(None)
}

fn return_one() -> mtask::Result<i32> {
    mtask::yield_now();
    Ok(1)
}

fn return_many() -> mtask::Result<(i32, i32)> {
    mtask::yield_now();
    Ok((2, 3))
}

fn raise_exception() -> Result<(), String> {
    mtask::yield_now();
    Err("foo".to_string())
}

mtask::entries!(main, return_none, return_one, return_many, raise_exception);
